import os,random,sys,shutil
A=sys.argv[1]; rnd=random.Random(int(sys.argv[2])); names=['a','b','c','A','d/x','d/y','e']
def p(n): return os.path.join(A,n)
log=[]
for step in range(int(sys.argv[3])):
    op=rnd.choice(['write','mv','mkdir','rmrf','swap','file2dir'])
    try:
        if op=='write':
            n=rnd.choice(names); os.makedirs(os.path.dirname(p(n)),exist_ok=True)
            if os.path.isdir(p(n)): continue
            open(p(n),'w').write(f'{n}-{sys.argv[2]}-{step}\n')
        elif op=='mv':
            s,d=rnd.sample(names,2)
            if os.path.exists(p(s)) and not os.path.isdir(p(d)): os.makedirs(os.path.dirname(p(d)),exist_ok=True); os.rename(p(s),p(d))
        elif op=='mkdir':
            n=rnd.choice(['d','e','A','b'])
            if not os.path.exists(p(n)): os.mkdir(p(n)); open(p(n)+'/in','w').write(f'in-{step}')
        elif op=='rmrf':
            n=rnd.choice(['d','e','A','b'])
            if os.path.isdir(p(n)): shutil.rmtree(p(n))
            elif os.path.exists(p(n)): os.remove(p(n))
        elif op=='swap':
            s,d=rnd.sample(['a','b','c','e','A'],2)
            if os.path.exists(p(s)) and os.path.exists(p(d)): os.rename(p(s),p('tmp')); os.rename(p(d),p(s)); os.rename(p('tmp'),p(d))
        elif op=='file2dir':
            n=rnd.choice(['a','b','c','e'])
            if os.path.isfile(p(n)): os.rename(p(n),p('t')); os.mkdir(p(n)); os.rename(p('t'),p(n)+'/'+n)
        log.append(op)
    except OSError as e: log.append(f'{op} err {e}')
print(len(log))
