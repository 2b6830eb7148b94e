# count_loop.sh CTL: a bash loop (no external commands: a child would not be part of a
# one-process checkpoint) writing "count N" to CTL/count.log through fd 3 every 50 ms,
# timed by $EPOCHREALTIME, keeping an associative array too. After CTL/GO it reads the
# log back and checks it is exactly count 1..N and the array intact; PASS or FAIL.
ctl=$1
log=$ctl/count.log
exec 3>"$log"
declare -A seen
i=0
next=0
while :; do
	now=${EPOCHREALTIME/./}
	if ((now < next)); then
		continue
	fi
	next=$((now + 50000))
	i=$((i + 1))
	seen[k$i]=$((i * 7))
	echo "count $i" >&3
	if ((i == 3)); then
		echo "READY $$"
	fi
	if ((i > 3)) && [[ -e $ctl/GO ]]; then
		break
	fi
done
mapfile -t lines <"$log"
if ((${#lines[@]} != i)); then
	echo "FAIL the log has ${#lines[@]} lines, the counter is $i"
	exit 1
fi
for ((k = 1; k <= i; k++)); do
	if [[ ${lines[k - 1]} != "count $k" ]]; then
		echo "FAIL line $k is '${lines[k - 1]}'"
		exit 1
	fi
	if [[ ${seen[k$k]} != $((k * 7)) ]]; then
		echo "FAIL array entry k$k is '${seen[k$k]}'"
		exit 1
	fi
done
echo "PASS count=$i pid=$$"
