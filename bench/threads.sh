#!/usr/bin/env bash
# bench/threads.sh PID [SECONDS]: the CPU ticks (1/100 s, utime + stime) of each
# thread of PID over SECONDS (default 60), their total as CPU s/hour, and the
# process's RSS and threads at the end. Linux only (/proc).
P=$1; S=${2:-60}
ticks() { for t in /proc/$P/task/*; do echo "$(cat $t/comm) $(cut -d')' -f2 $t/stat | awk '{print $12+$13}')"; done | sort; }
ticks > /tmp/t0.$P; sleep $S; ticks > /tmp/t1.$P
paste /tmp/t0.$P /tmp/t1.$P | awk -v s=$S '{d=$4-$2; tot+=d; print $1, d " ticks"} END {print "total", tot " ticks =", tot/100/s*3600 " s/hour"}'
grep -E "^(VmRSS|RssAnon|RssFile|Threads)" /proc/$P/status
