complete -c knockd -s i -l interface -f -a "(__fish_print_interfaces) any" -d 'Interface to listen on (repeatable, or comma-separated); overrides `Interface` [default: the default route\'s interface, else eth0]' -r
complete -c knockd -s c -l config -d 'Configuration file' -r -F
complete -c knockd -s p -l pidfile -d 'Pid file written in daemon mode; overrides `PidFile` [default: /var/run/knockd.pid]' -r -F
complete -c knockd -s g -l logfile -d 'Log file; overrides `LogFile`' -r -F
complete -c knockd -l replay -d 'Run a pcap capture file through the configuration and print what would have happened, with the packets\' times; runs no command' -r -F
complete -c knockd -l json-log -d 'Also write every event (stage, open, close, timeout, invalidated, command started and finished, nftables element, SPA and TOTP outcomes, with each open\'s stage times) as one JSON object per line to this file' -r -F
complete -c knockd -l state-file -d 'Where pending stop commands are recorded, so that they run after a crash or restart' -r -F
complete -c knockd -l syslog-facility -d 'Syslog facility used when `UseSyslog` is set (daemon, user, local0…local7, …)' -r -f -a "daemon\t''
user\t''
auth\t''
authpriv\t''
local0\t''
local1\t''
local2\t''
local3\t''
local4\t''
local5\t''
local6\t''
local7\t''
kern\t''
mail\t''
syslog\t''
lpr\t''
news\t''
uucp\t''
cron\t''
ftp\t''
ntp\t''
audit\t''
alert\t''
clock_daemon\t''"
complete -c knockd -l max-sources -d 'Most knock sources tracked at once; beyond it the oldest attempt is dropped (bounds memory under a spoofed-source flood)' -r
complete -c knockd -l max-commands -d 'Most commands running at once; further ones wait their turn' -r
complete -c knockd -l command-kill-timeout -d 'Kill a command (its whole process group) that is still running after this long (e.g. `300s`, `10m`; `0` never kills)' -r
complete -c knockd -l metrics-file -d 'Also write the counters in the Prometheus text format to this file (atomically, every few seconds after a change), for node_exporter\'s textfile collector' -r -F
complete -c knockd -s d -l daemon -d 'Run in the background (fork, setsid, chdir /) and write the pid file'
complete -c knockd -s D -l debug -d 'Debug output on stdout (configuration, every captured packet, filters)'
complete -c knockd -s l -l lookup -d 'Show knockers\' host names in log lines (reverse lookups, never blocking matching)'
complete -c knockd -s 4 -l only-ip-v4 -d 'Ignore IPv6 packets and addresses'
complete -c knockd -s v -l verbose -d 'Verbose output on stdout'
complete -c knockd -s V -l version -d 'Print the version and exit'
complete -c knockd -l check -d 'Parse the configuration, print it in canonical form with every warning, and exit (status 0 if valid, 1 if not)'
complete -c knockd -l quiet -d 'With --check: print nothing but errors (no configuration, no warnings); only the exit status tells. For systemd\'s ExecStartPre/ExecReload'
complete -c knockd -l status -d 'Print the running daemon\'s status and exit: doors, open doors with their knockers and time left (the pending stop commands), counters, capture state per interface. Read from `status` in the --state-file\'s directory (default /var/lib/knockd/status), which the daemon rewrites every few seconds after a change'
complete -c knockd -l json -d 'With --status: print the status file\'s JSON document instead'
complete -c knockd -l no-stop-on-exit -d 'On SIGTERM/SIGINT, do not run the pending stop commands (they stay recorded in the state file and run at the next start)'
complete -c knockd -s h -l help -d 'Print help (see more with \'--help\')'
