#!/usr/bin/env python3
"""Per-machine-instruction cost of one function of the compiler, from callgrind.

Usage: asmprof.py CALLGRIND_OUT BINARY FUNC_SUBSTR [MIN]

Prints the self instruction count (Ir) of every host instruction of the
functions whose name contains FUNC_SUBSTR, next to its disassembly (objdump),
leaving out instructions counted fewer than MIN times (default 1). Find where a
pass spends its instructions: spills, reloads, branches around rare paths.

    cargo build --release -p kiln-bench --examples
    valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file=cg.out \
        --toggle-collect='compile_scale::compile_text' \
        target/release/examples/compile_scale 10000
    python3 benches/tools/asmprof.py cg.out target/release/examples/compile_scale Em::body 1000
"""
import sys, subprocess, re, collections
out, binary, fsub = sys.argv[1], sys.argv[2], sys.argv[3]
mn = int(sys.argv[4]) if len(sys.argv) > 4 else 1
counts = collections.Counter()
names = {}
cur_fn = None
last_addr = 0
in_calls = False
with open(out) as f:
    for line in f:
        line = line.rstrip('\n')
        if line.startswith('fn='):
            m = re.match(r'fn=\((\d+)\)(?: (.*))?', line)
            if m.group(2): names[m.group(1)] = m.group(2)
            cur_fn = names.get(m.group(1))
            continue
        if line.startswith(('cfn=','cfi=','cfl=','cob=')):
            m = re.match(r'cfn=\((\d+)\)(?: (.*))?', line)
            if m and m.group(2): names[m.group(1)] = m.group(2)
            continue
        if line.startswith('calls='):
            in_calls = True; continue
        if not line or not (line[0] in '0123456789+-*x'): continue
        parts = line.split()
        a = parts[0]
        if a.startswith('0x'): addr = int(a, 16)
        elif a.startswith("+"): addr = last_addr + int(a[1:], 0)
        elif a.startswith("-"): addr = last_addr - int(a[1:], 0)
        elif a == '*': addr = last_addr
        else: addr = int(a)
        last_addr = addr
        if in_calls:
            in_calls = False; continue
        if cur_fn and fsub in cur_fn and len(parts) > 1:
            counts[addr] += int(parts[1]) if len(parts) == 2 else int(parts[-1])
tot = sum(counts.values())
print("total self Ir", tot)
if not counts: sys.exit()
lo, hi = min(counts), max(counts)
dis = subprocess.run(['objdump','-d','--no-show-raw-insn','-C','--start-address=%#x'%lo,'--stop-address=%#x'%(hi+16), binary],capture_output=True,text=True).stdout
for l in dis.splitlines():
    m = re.match(r'\s*([0-9a-f]+):\s*(.*)', l)
    if not m: continue
    a = int(m.group(1),16)
    c = counts.get(a,0)
    if c >= mn: print("%9d  %x  %s" % (c, a, m.group(2)))
