#!/usr/bin/env python3
"""How far a linear classifier on all-MiniLM-L6-v2 embeddings gets on people's safety labels:
the measurement behind the planned `offline:2` scorer (issue 15; not used by evalwatch yet).

    target/sentence-transformers-venv/bin/python scripts/offline2_feasibility.py

Features: the reply's embedding and its element-wise product with the prompt's last turn's.
DICES-990 (CC-BY 4.0, crowd majority, `datasets/dices/`): a logistic regression (balanced
classes) fitted on the half whose id hashes even, ROC-AUC and Cohen's kappa on the other half,
and on DICES-350 (expert labels). hh-rlhf harmless pairs (MIT, `datasets/pairs/`): fitted on
half the pairs (the better reply 1, the worse 0), the share of held-out pairs whose better reply
scores higher. Figures of 2026-11-30 in ARCHITECTURE.md ("Next steps").
"""
import json, hashlib, sys, tempfile, os
sys.path.insert(0, 'scripts')
import numpy as np
import pinned_model
from sentence_transformers import SentenceTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, cohen_kappa_score

tmp = tempfile.mkdtemp()
model = SentenceTransformer(pinned_model.unpack(tmp), device="cpu")
half = lambda key: int(hashlib.sha256(str(key).encode()).hexdigest(), 16) % 2
dices = [json.loads(l) for l in open('datasets/dices/dices_990.labels.jsonl')]
expert = [json.loads(l) for l in open('datasets/dices/dices_350_expert.labels.jsonl')]
pairs = [json.loads(l) for l in open('datasets/pairs/hh_rlhf_harmless.labels.jsonl')]
def last_turn(p):
    lines = [l for l in p.replace('\\n', '\n').split('\n') if l.strip()]
    return lines[-1][3:] if lines and lines[-1][:2] in ('A:', 'B:') else p[-500:]
def emb(texts):
    return model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
def feats(prompts, replies):
    P, R = emb(prompts), emb(replies)
    return np.hstack([R, P * R]), (P * R).sum(1)
X, cos = feats([last_turn(r['prompt']) for r in dices], [r['response'] for r in dices])
y = np.array([r['label'] for r in dices])
h = np.array([half(r['id']) for r in dices])
print('dices990 safe share', y.mean())
for C in [0.1, 1.0, 10.0]:
    clf = LogisticRegression(C=C, max_iter=5000, class_weight='balanced').fit(X[h == 0], y[h == 0])
    p = clf.predict_proba(X[h == 1])[:, 1]
    print('C', C, 'held-out AUC', round(roc_auc_score(y[h == 1], p), 3), 'kappa', round(cohen_kappa_score(y[h == 1], (p > 0.5).astype(int)), 3))
# expert 350 with classifier trained on all dices990 half 0
clf = LogisticRegression(C=1.0, max_iter=5000, class_weight='balanced').fit(X[h == 0], y[h == 0])
Xe, _ = feats([last_turn(r['prompt']) for r in expert], [r['response'] for r in expert])
ye = np.array([r['label'] for r in expert])
pe = clf.predict_proba(Xe)[:, 1]
print('expert350 AUC', round(roc_auc_score(ye, pe), 3), 'kappa', round(cohen_kappa_score(ye, (pe > 0.5).astype(int)), 3))
# hh pairs: train on chosen vs rejected, half split
prompts = [r['prompt'] for r in pairs]
A, _ = feats(prompts, [r['response_a'] for r in pairs])
B, _ = feats(prompts, [r['response_b'] for r in pairs])
lab = np.array([1 if r['label'] == 'a' else 0 for r in pairs])
hp = np.array([half(r['id']) for r in pairs])
better = np.where(lab[:, None] == 1, A, B); worse = np.where(lab[:, None] == 1, B, A)
Xt = np.vstack([better[hp == 0], worse[hp == 0]]); yt = np.r_[np.ones((hp == 0).sum()), np.zeros((hp == 0).sum())]
clf2 = LogisticRegression(C=1.0, max_iter=5000).fit(Xt, yt)
sa, sb = clf2.decision_function(A[hp == 1]), clf2.decision_function(B[hp == 1])
print('hh pairs held-out accuracy', round(((sa > sb) == (lab[hp == 1] == 1)).mean(), 3), 'n', (hp == 1).sum())
# dices-trained classifier on hh pairs
sa, sb = clf.decision_function(A[hp == 1]), clf.decision_function(B[hp == 1])
print('dices-trained on hh pairs accuracy', round(((sa > sb) == (lab[hp == 1] == 1)).mean(), 3))
