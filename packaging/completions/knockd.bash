_knockd() {
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
                cmd="knockd"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        knockd)
            opts="-i -d -c -D -l -4 -v -V -p -g -h --interface --daemon --config --debug --lookup --only-ip-v4 --verbose --version --pidfile --logfile --check --quiet --replay --json-log --state-file --syslog-facility --max-sources --max-commands --command-kill-timeout --status --json --metrics-file --no-stop-on-exit --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --interface)
                    COMPREPLY=($(compgen -W "any $(ls /sys/class/net 2>/dev/null)" -- "${cur}"))
                    return 0
                    ;;
                -i)
                    COMPREPLY=($(compgen -W "any $(ls /sys/class/net 2>/dev/null)" -- "${cur}"))
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
                --pidfile)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -p)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --logfile)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -g)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --replay)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --json-log)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --state-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --syslog-facility)
                    COMPREPLY=($(compgen -W "daemon user auth authpriv local0 local1 local2 local3 local4 local5 local6 local7 kern mail syslog lpr news uucp cron ftp ntp audit alert clock_daemon" -- "${cur}"))
                    return 0
                    ;;
                --max-sources)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-commands)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --command-kill-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f "${cur}"))
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
    complete -F _knockd -o nosort -o bashdefault -o default knockd
else
    complete -F _knockd -o bashdefault -o default knockd
fi
