#!/usr/bin/env python3
"""What structured output costs a generation in hearthd.

    tests/bench/structured.py HEARTHD MODEL.gguf

64 tokens of a chat answer, plain against response_format json_object,
same seeds, 6 alternated pairs after one warm-up each; prints the median
milliseconds per generated token of each and the median of the ratios.
Run it alone on the machine."""
import json, statistics, subprocess, sys, time, urllib.request, os
B, M = sys.argv[1], sys.argv[2]
p=subprocess.Popen([B,'--port','18093','-m',M,'-t','2','-P','1'],stderr=subprocess.DEVNULL)
for i in range(300):
    try: urllib.request.urlopen('http://127.0.0.1:18093/health').read(); break
    except Exception: time.sleep(0.2)
def run(rf, seed):
    body={'messages':[{'role':'user','content':'Describe a cat as JSON.'}],'max_tokens':64,'seed':seed,'temperature':0.8,'ignore_eos':True}
    if rf: body['response_format']=rf
    req=urllib.request.Request('http://127.0.0.1:18093/v1/chat/completions',data=json.dumps(body).encode(),headers={'Content-Type':'application/json'})
    t=time.time(); o=json.load(urllib.request.urlopen(req)); dt=time.time()-t
    return dt/ max(1,o['usage']['completion_tokens']), o['usage']['completion_tokens'], o['choices'][0]['finish_reason']
run(None,0); run({'type':'json_object'},0)
ratios=[]; a=[]; b=[]
for k in range(6):
    x=run(None,k); y=run({'type':'json_object'},k)
    a.append(x[0]); b.append(y[0]); ratios.append(y[0]/x[0])
print('plain %.1f ms/token, json_object %.1f ms/token, median ratio %.3f'%(statistics.median(a)*1e3, statistics.median(b)*1e3, statistics.median(ratios)), x[1:], y[1:])
p.terminate(); p.wait()
