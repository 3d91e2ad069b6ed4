# Door names for --door: the [sections] of the -c/--config file, else of /etc/knockd.conf.
__knock_doors() {
    local file=/etc/knockd.conf i
    for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
        case ${COMP_WORDS[i]} in -c | --config) file=${COMP_WORDS[i + 1]} ;; esac
    done
    sed -n 's/^[[:space:]]*\[\([^]]*\)\].*$/\1/p' "$file" 2>/dev/null | grep -vx options
}

_knock() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="knock"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        knock)
            opts="-u -d -4 -6 -v -c -h -V --udp --delay --ipv4 --ipv6 --verbose --door --config --allow --access --totp-time --source-address --interface --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --delay)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -d)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --door)
                    COMPREPLY=($(compgen -W "$(__knock_doors)" -- "${cur}"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -c)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --allow)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --access)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --totp-time)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --source-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --interface)
                    COMPREPLY=($(compgen -W "any $(ls /sys/class/net 2>/dev/null)" -- "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _knock -o nosort -o bashdefault -o default knock
else
    complete -F _knock -o bashdefault -o default knock
fi
