complete -c knock -s d -l delay -d 'Wait MS milliseconds between port hits (not after the last one; at most 3600000)' -r
complete -c knock -l door -f -a "(string replace -rf '^\s*\[([^]]+)\].*' '$1' < /etc/knockd.conf 2>/dev/null | string match -v options)" -d 'Knock the sequence of door NAME from the configuration file (one-time-sequence doors: the active line, which is not marked used)' -r
complete -c knock -s c -l config -d 'knockd configuration file read by --door [default: /etc/knockd.conf]' -r -F
complete -c knock -l allow -d 'SPA door: the address to let in [default: the packet\'s source (0.0.0.0)]' -r
complete -c knock -l access -d 'SPA door: the protocols/ports to ask for, e.g. tcp/22,udp/1194 [default: the door\'s SPA_Access]' -r
complete -c knock -l totp-time -d 'TOTP doors: knock the code of this time instead of now (unix seconds, or an RFC 3339 time such as 2026-01-02T03:04:05Z)' -r
complete -c knock -l source-address -d 'Send from this local address' -r
complete -c knock -l interface -f -a "(__fish_print_interfaces) any" -d 'Send through this network interface (SO_BINDTODEVICE; Linux only)' -r
complete -c knock -s u -l udp -d 'Ports without a :tcp/:udp suffix use UDP (default is TCP)'
complete -c knock -s 4 -l ipv4 -d 'Force usage of IPv4'
complete -c knock -s 6 -l ipv6 -d 'Force usage of IPv6'
complete -c knock -s v -l verbose -d 'Be verbose: print each hit before it is sent'
complete -c knock -s h -l help -d 'Print help'
complete -c knock -s V -l version -d 'Print version'
