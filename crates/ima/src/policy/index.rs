//! A bit-set index over the rules, so a decision costs a few lookups and word-wide
//! ANDs rather than a walk over every rule.
//!
//! For each equality condition (hook, mask, fsmagic, fsuuid, fsname, fs_subtype, the
//! six LSM labels) and each value the policy mentions, one bit set holds the rules
//! that a request with that value can match (rules without the condition included).
//! A request ANDs the sets of its values; the set bits, taken in rule order per
//! action class, are the only rules left to check, and only for their numeric id
//! conditions. The result is exactly that of walking the rules in order.

use std::borrow::Borrow;

use super::{CredCond, Func, IdCond, Policy, Request};

/// Above this many rules the index is not built (it grows with rules × values).
pub(super) const MAX_INDEXED_RULES: usize = 4096;

const MAX_DIMS: usize = 12;

#[derive(Debug, Clone)]
struct Dim<K> {
    keys: Vec<K>,
    sets: Vec<u32>,
    default: u32,
}

impl<K: Ord> Dim<K> {
    fn active(&self) -> bool {
        !self.keys.is_empty()
    }

    #[inline]
    fn lookup<Q: Ord + ?Sized>(&self, k: &Q) -> u32
    where
        K: Borrow<Q>,
    {
        match self.keys.binary_search_by(|x| x.borrow().cmp(k)) {
            Ok(i) => self.sets[i],
            Err(_) => self.default,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Resid {
    uid: Option<CredCond>,
    gid: Option<CredCond>,
    fowner: Option<IdCond>,
    fgroup: Option<IdCond>,
}

struct Builder {
    n: usize,
    words: usize,
    pool: Vec<u64>,
}

impl Builder {
    fn set(&mut self, member: impl Fn(usize) -> bool) -> u32 {
        let off = self.pool.len();
        self.pool.resize(off + self.words, 0);
        for i in (0..self.n).filter(|&i| member(i)) {
            self.pool[off + i / 64] |= 1 << (i % 64);
        }
        off as u32
    }

    fn dim<K: Ord + Clone>(&mut self, vals: &[Option<K>]) -> Dim<K> {
        let mut keys: Vec<K> = vals.iter().flatten().cloned().collect();
        keys.sort();
        keys.dedup();
        let default = self.set(|i| vals[i].is_none());
        let sets = keys
            .iter()
            .map(|k| self.set(|i| vals[i].as_ref().is_none_or(|v| v == k)))
            .collect();
        Dim {
            keys,
            sets,
            default,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Index {
    words: usize,
    pool: Vec<u64>,
    func: [u32; 16],
    /// `[request mask has bits above MAY_APPEND][mask & 0xf]`
    mask: [[u32; 16]; 2],
    class: [u32; 4],
    resid_set: u32,
    resid: Vec<Resid>,
    fsmagic: Dim<u64>,
    fsuuid: Dim<[u8; 16]>,
    fsname: Dim<Box<str>>,
    fs_subtype: Dim<Box<str>>,
    lsm: [Dim<Box<str>>; 6],
}

impl Index {
    pub(super) fn new(p: &Policy) -> Index {
        let rules = &p.rules;
        let n = rules.len();
        let mut b = Builder {
            n,
            words: n.div_ceil(64).max(1),
            pool: Vec::new(),
        };
        let mut func = [0u32; 16];
        for (id, slot) in func.iter_mut().enumerate() {
            let f = Func::from_id(id as u8);
            *slot = b.set(|i| match (f, rules[i].func) {
                (Some(Func::PostSetattr), _) => true,
                (Some(f), rf) => rf.is_none() || rf == Some(f),
                (None, _) => false,
            });
        }
        let mut mask = [[0u32; 16]; 2];
        for (extra, row) in mask.iter_mut().enumerate() {
            for (m, slot) in row.iter_mut().enumerate() {
                let req = m as u8 | if extra == 1 { 0x10 } else { 0 };
                *slot = b.set(|i| rules[i].mask.is_none_or(|c| c.matches(req)));
            }
        }
        let class = super::ActionClass::ALL.map(|c| b.set(|i| rules[i].action.class() == c));
        let resid: Vec<Resid> = rules
            .iter()
            .map(|r| Resid {
                uid: r.uid,
                gid: r.gid,
                fowner: r.fowner,
                fgroup: r.fgroup,
            })
            .collect();
        let resid_set = b.set(|i| {
            let r = &resid[i];
            r.uid.is_some() || r.gid.is_some() || r.fowner.is_some() || r.fgroup.is_some()
        });
        let fsmagic = b.dim(&rules.iter().map(|r| r.fsmagic).collect::<Vec<_>>());
        let fsuuid = b.dim(&rules.iter().map(|r| r.fsuuid).collect::<Vec<_>>());
        let boxed = |v: &Option<String>| v.as_deref().map(Box::<str>::from);
        let fsname = b.dim(&rules.iter().map(|r| boxed(&r.fsname)).collect::<Vec<_>>());
        let fs_subtype = b.dim(
            &rules
                .iter()
                .map(|r| boxed(&r.fs_subtype))
                .collect::<Vec<_>>(),
        );
        let lsm = [0, 1, 2, 3, 4, 5]
            .map(|k| b.dim(&rules.iter().map(|r| boxed(&r.lsm[k])).collect::<Vec<_>>()));
        Index {
            words: b.words,
            pool: b.pool,
            func,
            mask,
            class,
            resid_set,
            resid,
            fsmagic,
            fsuuid,
            fsname,
            fs_subtype,
            lsm,
        }
    }

    #[inline]
    fn resid_ok(&self, i: usize, q: &Request) -> bool {
        let r = &self.resid[i];
        r.uid
            .is_none_or(|c| super::eval::cred_matches(c, q.cap_setuid, q.uid, q.euid, q.suid))
            && r.gid
                .is_none_or(|c| super::eval::cred_matches(c, q.cap_setgid, q.gid, q.egid, q.sgid))
            && r.fowner.is_none_or(|c| c.matches(q.fowner))
            && r.fgroup.is_none_or(|c| c.matches(q.fgroup))
    }

    /// Walk the candidates of a file request (not KEY_CHECK/CRITICAL_DATA) in rule
    /// order; call `decide(rule, class)` for the first match of each class in `classes`.
    #[inline]
    pub(super) fn walk(&self, q: &Request, classes: u8, mut decide: impl FnMut(usize)) {
        let mut sets = [0u32; MAX_DIMS];
        let mut n = 0;
        let mut add = |o: u32| {
            sets[n] = o;
            n += 1;
        };
        add(self.func[q.func as usize & 15]);
        if q.func != Func::PostSetattr {
            add(self.mask[(q.mask > 0xf) as usize][(q.mask & 0xf) as usize]);
        }
        if self.fsmagic.active() {
            add(self.fsmagic.lookup(&q.fsmagic));
        }
        if self.fsuuid.active() {
            add(self.fsuuid.lookup(&q.fsuuid));
        }
        if self.fsname.active() {
            add(self.fsname.lookup(q.fsname));
        }
        if self.fs_subtype.active() {
            add(match q.fs_subtype {
                Some(s) => self.fs_subtype.lookup(s),
                None => self.fs_subtype.default,
            });
        }
        let labels = [
            q.obj.user,
            q.obj.role,
            q.obj.type_,
            q.subj.user,
            q.subj.role,
            q.subj.type_,
        ];
        for (dim, label) in self.lsm.iter().zip(labels) {
            if dim.active() {
                add(match label {
                    Some(s) => dim.lookup(s),
                    None => dim.default,
                });
            }
        }
        let sets = &sets[..n];
        let pool = &self.pool[..];
        let mut undecided = classes & 0xf;
        for w in 0..self.words {
            let mut cand = !0u64;
            for &o in sets {
                cand &= pool[o as usize + w];
            }
            if cand == 0 {
                continue;
            }
            let resid = pool[self.resid_set as usize + w];
            for (c, &cls) in self.class.iter().enumerate() {
                if undecided & (1 << c) == 0 {
                    continue;
                }
                let mut x = cand & pool[cls as usize + w];
                while x != 0 {
                    let bit = x.trailing_zeros() as usize;
                    let i = w * 64 + bit;
                    if resid >> bit & 1 == 0 || self.resid_ok(i, q) {
                        decide(i);
                        undecided &= !(1 << c);
                        break;
                    }
                    x &= x - 1;
                }
            }
            if undecided == 0 {
                break;
            }
        }
    }
}
