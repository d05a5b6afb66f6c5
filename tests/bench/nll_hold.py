#!/usr/bin/env python3
"""What the router's held NLL prefill costs a request in hearthd.

    tests/bench/nll_hold.py HEARTHD MODEL.gguf [WORDS]

Starts hearthd with weights that use the nll feature and always decide
local, then times max_tokens-1 answers of fresh random prompts of WORDS
words (no prefix cached): route auto (held prefill + NLL) against
X-Hearth-Route: local, 8 alternated pairs; prints the medians and the
median of the ratios. Run it alone on the machine."""
import json, random, statistics, subprocess, sys, time, urllib.request, os
here = os.path.dirname(os.path.abspath(__file__))
B, M = sys.argv[1], sys.argv[2]
sys.argv = sys.argv[2:]
w=open(os.path.join(here, '..', '..', 'conf', 'router-weights.txt')).read()
import re
w=re.sub(r'(?m)^nll .*$','nll 0.000001',w)
w=re.sub(r'(?m)^bias .*$','bias -50',w)
open('/tmp/hearth-nll-hold-w.txt','w').write(w)
open('/tmp/hearth-nll-hold.conf','w').write('[router]\ndefault = auto\nweights = /tmp/hearth-nll-hold-w.txt\n[upstream.x]\nurl = http://127.0.0.1:1/v1\nmodel = x\n')
p=subprocess.Popen([B,'--config','/tmp/hearth-nll-hold.conf','--port','18090','-m',M,'-t','2','-P','2'],stderr=subprocess.DEVNULL)
for i in range(300):
    try: urllib.request.urlopen('http://127.0.0.1:18090/health').read(); break
    except Exception: time.sleep(0.2)
words='apple river stone cloud garden quiet window music paper light table orange mountain letter bridge summer'.split()
def ttft(route, n):
    rnd=random.Random(time.time_ns())
    txt=' '.join(rnd.choice(words) for _ in range(n))
    body=json.dumps({'messages':[{'role':'user','content':txt}],'max_tokens':1}).encode()
    req=urllib.request.Request('http://127.0.0.1:18090/v1/chat/completions',data=body,headers={'Content-Type':'application/json','X-Hearth-Route':route})
    t=time.time(); r=urllib.request.urlopen(req); r.read(); dt=time.time()-t
    return dt, r.headers.get('X-Hearth-Route-Reason')
res={'auto':[], 'local':[]}
for n in (int(sys.argv[1]) if len(sys.argv)>1 else 200,):
    for k in range(8):
        for route in (('auto','local') if k%2==0 else ('local','auto')):
            dt,why=ttft(route,n); res[route].append(dt)
    ratios=[a/l for a,l in zip(res['auto'],res['local'])]
    print(n, 'auto(held+nll) median %.3f s, local median %.3f s, median ratio %.3f'%(statistics.median(res['auto']),statistics.median(res['local']),statistics.median(ratios)), why)
h=json.load(urllib.request.urlopen('http://127.0.0.1:18090/health'))['router']; print('nll_rows',h['nll_rows'],'nll_seconds',h['nll_seconds'])
p.terminate(); p.wait()
