"""CPU time of a process tree, read from /proc: what the benchmark scripts charge a
server for the requests it answered (utime + stime of the process and its descendants)."""
import os


def tree(pid):
    """pid and every descendant alive now."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return out


def cpu_seconds(pids):
    """User + system CPU seconds the processes have used (gone ones count 0)."""
    tot = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            tot += int(fields[11]) + int(fields[12])
        except FileNotFoundError:
            pass
    return tot / os.sysconf("SC_CLK_TCK")
