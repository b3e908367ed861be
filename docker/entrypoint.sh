#!/usr/bin/env bash
# Container entrypoint for jex-collector.
#
# 1. Secrets from files (the `*_FILE` convention, as used with Docker/compose secrets mounted under
#    /run/secrets): for every COLLECTOR_<NAME>_FILE (and PGPASSWORD_FILE, which libpq reads as the
#    database password when COLLECTOR_DATABASE_URL carries none), export COLLECTOR_<NAME> with the
#    file's content (trailing newlines removed) and unset the _FILE variable. An empty file leaves
#    the variable unset, so optional secrets (an API key you do not have) can be empty files.
#    Setting both COLLECTOR_<NAME> and COLLECTOR_<NAME>_FILE is an error, as is an unreadable file.
#    Values are never printed. Such an error exits 2, like any bad setting of the collector.
# 2. Run the command: `collector ...` or any other program as given; arguments that are not a
#    program (`db upgrade`, `--help`, none at all) are passed to `collector` (none: `collector run`).
set -euo pipefail

die() {
    echo "docker-entrypoint: $*" >&2
    exit 2  # like the collector: a setting the operator must fix
}

load_secret_files() {
    local file_var target path value
    for file_var in $(compgen -e); do
        case "$file_var" in
            COLLECTOR_?*_FILE | PGPASSWORD_FILE) ;;
            *) continue ;;
        esac
        target="${file_var%_FILE}"
        path="${!file_var}"
        if [[ -n "${!target:-}" ]]; then
            die "both $target and $file_var are set; use one of them"
        fi
        [[ -n "$path" ]] || die "$file_var is set but empty"
        [[ -f "$path" && -r "$path" ]] || die "$file_var: cannot read $path"
        value="$(cat -- "$path")" || die "$file_var: cannot read $path"
        unset "$file_var"
        if [[ -n "$value" ]]; then
            export "$target=$value"
        else
            unset "$target"
        fi
    done
}

load_secret_files

if [[ $# -eq 0 ]]; then
    set -- collector run
elif [[ "$1" == -* ]] || ! type -P -- "$1" >/dev/null; then
    set -- collector "$@"
fi
exec "$@"
