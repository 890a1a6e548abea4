//! [`DigestMap`]: an ordered map from a name (path, keyring, ima-buf event) to accepted
//! hex digests, kept in insertion order as Python dicts are.
//!
//! A runtime policy holds hundreds of thousands of paths with one or more digests
//! each; three allocations per path (the name, the list, each digest) made building
//! the map the largest cost of loading a policy. Here all names live in one `String`
//! arena, all digests in another, and entries are offsets into them, with an
//! open-addressing index for lookups. [`DigestMap::get`] returns a borrowed view,
//! [`Digests`], iterable as `&str`. A map read from a policy text it may keep (a
//! [`Source`]) points into that text instead of copying the strings.

use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// Position and length of one string in an arena. Offsets are `u32`: a map holds at
/// most 4 GiB of names and 4 GiB of digests (policies are parsed from at most 4 GiB
/// of text, see [`crate::policy::MAX_POLICY_LEN`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

/// Text a [`DigestMap`] may point into instead of copying from it: the policy it was
/// read from.
pub type Source = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Bit of [`Span::len`] that marks a span of the map's [`Source`] rather than of its
/// arena.
const IN_SOURCE: u32 = 1 << 31;

/// The strings of one kind (names or digests) of a map: its arena, and the source
/// that spans marked [`IN_SOURCE`] point into.
#[derive(Clone, Copy)]
pub(crate) struct Text<'a> {
    arena: &'a str,
    source: &'a [u8],
}

impl<'a> Text<'a> {
    #[inline]
    fn new(arena: &'a str, source: &'a Option<Source>) -> Text<'a> {
        Text {
            arena,
            source: source.as_deref().map_or(&[], |s| s.as_ref()),
        }
    }

    #[inline]
    fn bytes(self, s: Span) -> &'a [u8] {
        let (start, len) = (s.start as usize, (s.len & !IN_SOURCE) as usize);
        let all = if s.len & IN_SOURCE != 0 {
            self.source
        } else {
            self.arena.as_bytes()
        };
        all.get(start..start + len).unwrap_or_default()
    }

    #[inline]
    fn str(self, s: Span) -> &'a str {
        if s.len & IN_SOURCE == 0 {
            return &self.arena[s.start as usize..s.start as usize + s.len as usize];
        }
        // The scanner took only UTF-8 strings; checked again, as the source is not
        // this map's to keep unchanged.
        std::str::from_utf8(self.bytes(s)).unwrap_or_default()
    }
}

/// Offset of the next string appended to `arena`.
#[inline]
fn arena_span(arena: &str, len: usize) -> Span {
    // A policy of more than 4 GiB of text is refused before it gets here; maps built
    // by code (generation) stay far below this.
    let start = u32::try_from(arena.len()).expect("DigestMap arena exceeds 4 GiB");
    let len = u32::try_from(len).expect("DigestMap string exceeds 4 GiB");
    Span { start, len }
}

/// One name and where its digests are in `spans`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Rec {
    pub(crate) name: Span,
    /// Index of the first digest in `spans`.
    pub(crate) first: u32,
    /// Number of digests.
    pub(crate) count: u32,
}

/// An ordered map from a name to accepted hex digests (see the module docs).
#[derive(Clone, Default)]
pub struct DigestMap {
    names: String,
    strs: String,
    source: Option<Source>,
    spans: Vec<Span>,
    entries: Vec<Rec>,
    index: Index,
}

/// The digests of one name: a borrowed view into a [`DigestMap`].
#[derive(Clone, Copy)]
pub struct Digests<'a> {
    strs: Text<'a>,
    spans: &'a [Span],
}

impl<'a> Digests<'a> {
    /// Number of digests.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The `i`-th digest.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        self.spans.get(i).map(|&s| self.strs.str(s))
    }

    /// The first digest.
    pub fn first(&self) -> Option<&'a str> {
        self.get(0)
    }

    /// The digests in order.
    pub fn iter(&self) -> DigestsIter<'a> {
        DigestsIter {
            strs: self.strs,
            spans: self.spans.iter(),
        }
    }

    /// Whether `digest` is one of them.
    pub fn contains(&self, digest: &str) -> bool {
        self.contains_bytes(digest.as_bytes())
    }

    /// [`Digests::contains`] for a digest given as bytes.
    #[inline]
    pub fn contains_bytes(&self, digest: &[u8]) -> bool {
        self.spans.iter().any(|&s| self.strs.bytes(s) == digest)
    }

    /// Owned copies.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }
}

/// Iterator over [`Digests`].
#[derive(Clone)]
pub struct DigestsIter<'a> {
    strs: Text<'a>,
    spans: std::slice::Iter<'a, Span>,
}

impl<'a> Iterator for DigestsIter<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        self.spans.next().map(|&s| self.strs.str(s))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl DoubleEndedIterator for DigestsIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.spans.next_back().map(|&s| self.strs.str(s))
    }
}

impl ExactSizeIterator for DigestsIter<'_> {}

impl<'a> IntoIterator for Digests<'a> {
    type Item = &'a str;
    type IntoIter = DigestsIter<'a>;
    fn into_iter(self) -> DigestsIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Digests<'a> {
    type Item = &'a str;
    type IntoIter = DigestsIter<'a>;
    fn into_iter(self) -> DigestsIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for Digests<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Digests<'_> {
    fn eq(&self, other: &Digests<'_>) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Digests<'_> {}

impl<S: AsRef<str>> PartialEq<[S]> for Digests<'_> {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for Digests<'_> {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<&[S]> for Digests<'_> {
    fn eq(&self, other: &&[S]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Digests<'_> {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

impl Serialize for Digests<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl PartialEq for DigestMap {
    fn eq(&self, other: &DigestMap) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for DigestMap {}

impl fmt::Debug for DigestMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Open-addressing index from name to position in `entries` (names are stored once,
/// in the arena; lookups are allocation-free).
#[derive(Clone, Default)]
struct Index {
    /// Per slot: the upper 32 bits of the name's hash and position + 1 (0 = empty
    /// slot); the length is a power of two. The stored hash bits let a probe skip
    /// other names without reading them.
    slots: Vec<u64>,
}

/// FxHash-style multiplicative hash: policies are trusted input and lookups never
/// insert, so a keyed hash buys nothing here.
#[inline]
pub(crate) fn name_hash(s: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = s.len() as u64;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    // Final mix so that the low bits (the slot) depend on every input bit.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

const TAG: u64 = 0xffff_ffff_0000_0000;

impl Index {
    fn with_capacity(n: usize) -> Index {
        let len = (n.max(8) * 2).next_power_of_two();
        let mut slots: Vec<u64> = Vec::with_capacity(len);
        huge_pages(slots.as_ptr().cast(), len * 8);
        // Zeroed by writing, not by calloc: a calloc'd page read first (a probe) maps
        // the zero page, and its first write is then a copy-on-write fault that flushes
        // the TLB of every CPU the process runs on.
        slots.resize(len, 0);
        Index { slots }
    }

    #[inline]
    fn find_hashed(&self, h: u64, names: Text, entries: &[Rec], name: &[u8]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let tag = h & TAG;
        let mut i = h as usize & mask;
        loop {
            match self.slots[i] {
                0 => return None,
                s if s & TAG == tag => {
                    let p = (s & 0xffff_ffff) as usize - 1;
                    if names.bytes(entries[p].name) == name {
                        return Some(p);
                    }
                    i = (i + 1) & mask;
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    #[inline]
    fn place_hashed(&mut self, h: u64, pos: usize) {
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = (h & TAG) | (pos as u64 + 1);
    }

    fn rebuild(&mut self, names: Text, entries: &[Rec], min_cap: usize) {
        *self = Index::with_capacity(min_cap);
        for (pos, r) in entries.iter().enumerate() {
            self.place_hashed(name_hash(names.bytes(r.name)), pos);
        }
    }

    #[inline]
    fn prefetch(&self, h: u64) {
        if self.slots.is_empty() {
            return;
        }
        let i = h as usize & (self.slots.len() - 1);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetching is a hint; `i` is in bounds.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.slots.as_ptr().add(i) as *const i8);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }
}

/// Ask for transparent huge pages for a large, fresh allocation (`ptr`, `len` bytes):
/// the arenas of a large policy are written once, front to back, and 4 KiB page
/// faults were a fifth of the time spent loading one. A hint only; errors are
/// ignored.
pub(crate) fn huge_pages(ptr: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < 2 * HUGE {
        return;
    }
    let start = (ptr as usize).div_ceil(HUGE) * HUGE;
    let end = (ptr as usize + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: advice on whole pages inside an allocation this process owns; it
        // does not change the memory's contents or validity.
        let _ = unsafe {
            rustix::mm::madvise(
                start as *mut std::ffi::c_void,
                end - start,
                rustix::mm::Advice::LinuxHugepage,
            )
        };
    }
}

/// Builds a [`DigestMap`] from entries in document order: names and digests are
/// appended to the arenas as they are read, and the index is built once at the end.
/// A name that occurs again keeps its first position and takes the last list, as
/// Python's `json` does with duplicate keys.
#[derive(Default)]
pub(crate) struct Builder {
    map: DigestMap,
    /// Address and length of the source's bytes: strings inside it are not copied.
    source_at: Option<(usize, usize)>,
    /// The hash of each entry's name, taken while the name is at hand.
    hashes: Vec<u64>,
}

impl Builder {
    /// A builder for about `entries` names and `digests` digests, with room for
    /// `names` and `strs` bytes of them in the arenas; strings that lie in `source`
    /// are not copied.
    pub(crate) fn with_capacity(
        entries: usize,
        names: usize,
        digests: usize,
        strs: usize,
        source: Option<Source>,
    ) -> Self {
        let source_at = source.as_ref().map(|s| {
            let t = (**s).as_ref();
            (t.as_ptr() as usize, t.len())
        });
        let b = Builder {
            map: DigestMap {
                names: String::with_capacity(names),
                strs: String::with_capacity(strs),
                source,
                spans: Vec::with_capacity(digests),
                entries: Vec::with_capacity(entries),
                index: Index::default(),
            },
            source_at,
            hashes: Vec::with_capacity(entries),
        };
        let m = &b.map;
        huge_pages(m.names.as_ptr(), m.names.capacity());
        huge_pages(m.strs.as_ptr(), m.strs.capacity());
        huge_pages(
            m.spans.as_ptr().cast(),
            m.spans.capacity() * size_of::<Span>(),
        );
        huge_pages(
            m.entries.as_ptr().cast(),
            m.entries.capacity() * size_of::<Rec>(),
        );
        b
    }

    /// Where `s` is in the source, if it is a part of it.
    #[inline]
    fn in_source(&self, s: &str) -> Option<Span> {
        let (base, len) = self.source_at?;
        let start = (s.as_ptr() as usize).checked_sub(base)?;
        let n = u32::try_from(s.len()).ok().filter(|&n| n < IN_SOURCE)?;
        (start + s.len() <= len).then_some(Span {
            start: u32::try_from(start).ok()?,
            len: n | IN_SOURCE,
        })
    }

    /// Start a new entry named `name`.
    #[inline]
    pub(crate) fn begin(&mut self, name: &str) {
        self.hashes.push(name_hash(name.as_bytes()));
        match self.in_source(name) {
            Some(span) => self.map.entries.push(Rec {
                name: span,
                first: self.map.spans.len() as u32,
                count: 0,
            }),
            None => {
                self.map.push_entry(name);
            }
        }
    }

    /// Add a digest to the entry begun last.
    #[inline]
    pub(crate) fn digest(&mut self, d: &str) {
        let span = self.in_source(d);
        let m = &mut self.map;
        let span = span.unwrap_or_else(|| {
            let span = arena_span(&m.strs, d.len());
            m.strs.push_str(d);
            span
        });
        m.spans.push(span);
        if let Some(r) = m.entries.last_mut() {
            r.count += 1;
        }
    }

    /// The name of the entry begun last (empty before the first).
    pub(crate) fn last_name(&self) -> &str {
        self.map
            .entries
            .last()
            .map(|r| self.map.names().str(r.name))
            .unwrap_or("")
    }

    /// Index the entries (see the type's docs for duplicates).
    pub(crate) fn finish(self) -> DigestMap {
        let (mut map, hashes) = (self.map, self.hashes);
        let mut index = Index::with_capacity(map.entries.len());
        let mut dups = Vec::new();
        // Insert with the slots of later names prefetched: the slot writes are random
        // accesses.
        const AHEAD: usize = 16;
        for &h in hashes.iter().take(AHEAD) {
            index.prefetch(h);
        }
        for pos in 0..map.entries.len() {
            if let Some(&h) = hashes.get(pos + AHEAD) {
                index.prefetch(h);
            }
            let name = map.names().bytes(map.entries[pos].name);
            let h = hashes[pos];
            match index.find_hashed(h, map.names(), &map.entries[..pos], name) {
                None => index.place_hashed(h, pos),
                Some(first) => {
                    let r = map.entries[pos];
                    map.entries[first].first = r.first;
                    map.entries[first].count = r.count;
                    dups.push(pos);
                }
            }
        }
        map.index = index;
        if !dups.is_empty() {
            let mut pos = 0;
            map.entries.retain(|_| {
                pos += 1;
                dups.binary_search(&(pos - 1)).is_err()
            });
            let mut index = std::mem::take(&mut map.index);
            index.rebuild(map.names(), &map.entries, map.entries.len());
            map.index = index;
        }
        map
    }
}

impl DigestMap {
    /// An empty map.
    pub fn new() -> DigestMap {
        DigestMap::default()
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no names.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[inline]
    fn names(&self) -> Text<'_> {
        Text::new(&self.names, &self.source)
    }

    #[inline]
    fn strs(&self) -> Text<'_> {
        Text::new(&self.strs, &self.source)
    }

    #[inline]
    fn view(&self, r: &Rec) -> Digests<'_> {
        Digests {
            strs: self.strs(),
            spans: &self.spans[r.first as usize..r.first as usize + r.count as usize],
        }
    }

    #[inline]
    fn find(&self, name: &str) -> Option<usize> {
        self.index.find_hashed(
            name_hash(name.as_bytes()),
            self.names(),
            &self.entries,
            name.as_bytes(),
        )
    }

    /// The digests accepted for `name`.
    pub fn get(&self, name: &str) -> Option<Digests<'_>> {
        self.find(name).map(|i| self.view(&self.entries[i]))
    }

    /// [`DigestMap::get`] with the hash of `name` ([`DigestMap::hash_name`]) computed
    /// beforehand, e.g. so that [`DigestMap::prefetch`] could run earlier.
    #[inline]
    pub fn get_hashed(&self, hash: u64, name: &str) -> Option<Digests<'_>> {
        self.get_bytes_hashed(hash, name.as_bytes())
    }

    /// [`DigestMap::get_hashed`] for a name given as bytes (a name that is not UTF-8
    /// has no entry).
    #[inline]
    pub fn get_bytes_hashed(&self, hash: u64, name: &[u8]) -> Option<Digests<'_>> {
        self.index
            .find_hashed(hash, self.names(), &self.entries, name)
            .map(|i| self.view(&self.entries[i]))
    }

    /// The hash [`DigestMap::get_hashed`] takes.
    #[inline]
    pub fn hash_name(name: &[u8]) -> u64 {
        name_hash(name)
    }

    /// Hint that a lookup of the name with this hash follows soon.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        self.index.prefetch(hash)
    }

    /// Whether `name` has an entry.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// Names and digests in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Digests<'_>)> + '_ {
        self.entries
            .iter()
            .map(move |r| (self.names().str(r.name), self.view(r)))
    }

    /// Append an empty entry named `name` (not yet in the index); its position.
    #[inline]
    fn push_entry(&mut self, name: &str) -> usize {
        let span = arena_span(&self.names, name.len());
        self.names.push_str(name);
        self.entries.push(Rec {
            name: span,
            first: self.spans.len() as u32,
            count: 0,
        });
        self.entries.len() - 1
    }

    /// Position of `name`'s entry, creating an empty one at the end.
    fn slot(&mut self, name: &str) -> usize {
        let h = name_hash(name.as_bytes());
        if let Some(i) = self
            .index
            .find_hashed(h, self.names(), &self.entries, name.as_bytes())
        {
            return i;
        }
        let pos = self.push_entry(name);
        if (pos + 1) * 2 > self.index.slots.len() {
            self.reindex(self.entries.len() * 2);
        } else {
            self.index.place_hashed(h, pos);
        }
        pos
    }

    /// Make entry `i`'s digests the last ones in `spans`, so that more can be appended.
    fn move_to_end(&mut self, i: usize) {
        let r = self.entries[i];
        if r.first as usize + r.count as usize == self.spans.len() {
            return;
        }
        let first = self.spans.len();
        self.spans
            .extend_from_within(r.first as usize..r.first as usize + r.count as usize);
        self.entries[i].first = first as u32;
    }

    fn append_digest(&mut self, i: usize, d: &str) {
        let span = arena_span(&self.strs, d.len());
        self.strs.push_str(d);
        self.spans.push(span);
        self.entries[i].count += 1;
    }

    /// Append `digest` to `name`'s list (creating it at the end), as Python's
    /// `setdefault(name, []).append(digest)`.
    pub fn push(&mut self, name: &str, digest: impl AsRef<str>) {
        let i = self.slot(name);
        self.move_to_end(i);
        self.append_digest(i, digest.as_ref());
    }

    /// Replace `name`'s list (keeping its position, or appending).
    pub fn insert(&mut self, name: &str, digests: Vec<String>) {
        self.insert_iter(name, digests)
    }

    /// [`DigestMap::insert`] from any strings.
    pub fn insert_iter<S: AsRef<str>>(&mut self, name: &str, digests: impl IntoIterator<Item = S>) {
        let i = self.slot(name);
        self.entries[i].first = self.spans.len() as u32;
        self.entries[i].count = 0;
        for d in digests {
            self.append_digest(i, d.as_ref());
        }
    }

    /// Remove `name`; later entries keep their order.
    pub fn remove(&mut self, name: &str) -> Option<Vec<String>> {
        let i = self.find(name)?;
        let v = self.view(&self.entries[i]).to_vec();
        self.entries.remove(i);
        self.reindex(self.entries.len());
        Some(v)
    }

    /// Rebuild the index with room for `min_cap` names.
    fn reindex(&mut self, min_cap: usize) {
        let mut index = std::mem::take(&mut self.index);
        index.rebuild(self.names(), &self.entries, min_cap);
        self.index = index;
    }

    /// Sort and de-duplicate entry `i`'s digests in place.
    fn sort_entry(&mut self, i: usize) {
        let r = self.entries[i];
        let (a, b) = (r.first as usize, r.first as usize + r.count as usize);
        let strs = Text::new(&self.strs, &self.source);
        let list = &mut self.spans[a..b];
        list.sort_unstable_by(|&x, &y| strs.bytes(x).cmp(strs.bytes(y)));
        let mut n = 0;
        for k in 0..list.len() {
            if n == 0 || strs.bytes(list[k]) != strs.bytes(list[n - 1]) {
                list[n] = list[k];
                n += 1;
            }
        }
        self.entries[i].count = n as u32;
    }

    /// Keylime's `merge_maplists`: names new to `self` are appended with their list;
    /// lists of names present in both become the sorted set union.
    pub fn merge(&mut self, other: &DigestMap) {
        for (name, digests) in other.iter() {
            match self.find(name) {
                None => self.insert_iter(name, digests),
                Some(i) => {
                    self.move_to_end(i);
                    for d in digests {
                        self.append_digest(i, d);
                    }
                    self.sort_entry(i);
                }
            }
        }
    }

    /// Sort and de-duplicate every list (Keylime's final `sorted(set(v))`).
    pub fn normalize(&mut self) {
        for i in 0..self.entries.len() {
            self.sort_entry(i);
        }
    }
}

impl Serialize for DigestMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference semantics: a Vec of (name, Vec<digest>) in Python dict order.
    #[derive(Default)]
    struct Model(Vec<(String, Vec<String>)>);

    impl Model {
        fn slot(&mut self, name: &str) -> usize {
            match self.0.iter().position(|(k, _)| k == name) {
                Some(i) => i,
                None => {
                    self.0.push((name.to_owned(), Vec::new()));
                    self.0.len() - 1
                }
            }
        }
    }

    fn same(m: &DigestMap, model: &Model) {
        let got: Vec<(String, Vec<String>)> =
            m.iter().map(|(k, v)| (k.to_owned(), v.to_vec())).collect();
        assert_eq!(got, model.0);
        for (k, v) in &model.0 {
            assert_eq!(m.get(k).unwrap(), *v, "{k}");
            assert!(m.contains(k));
        }
        assert!(m.get("/not there").is_none());
    }

    proptest::proptest! {
        /// Every mutation agrees with the Vec-of-Vecs model it replaced.
        #[test]
        fn operations_match_model(ops in proptest::collection::vec(
            (0u8..6, 0u8..12, proptest::collection::vec(0u8..5, 0..4)), 0..80)) {
            let mut m = DigestMap::new();
            let mut model = Model::default();
            for (op, n, ds) in ops {
                let name = format!("/n{n}");
                let ds: Vec<String> = ds.iter().map(|d| format!("{d:02x}")).collect();
                match op {
                    0 | 1 => {
                        for d in &ds {
                            m.push(&name, d);
                            let i = model.slot(&name);
                            model.0[i].1.push(d.clone());
                        }
                    }
                    2 => {
                        m.insert(&name, ds.clone());
                        let i = model.slot(&name);
                        model.0[i].1 = ds;
                    }
                    3 => {
                        let got = m.remove(&name);
                        let want = model.0.iter().position(|(k, _)| *k == name)
                            .map(|i| model.0.remove(i).1);
                        proptest::prop_assert_eq!(got, want);
                    }
                    4 => {
                        let mut o = DigestMap::new();
                        for d in &ds {
                            o.push(&name, d);
                            o.push("/other", d);
                        }
                        m.merge(&o);
                        for (k, v) in [(name.clone(), ds.clone()), ("/other".to_owned(), ds.clone())] {
                            if v.is_empty() {
                                continue;
                            }
                            match model.0.iter().position(|(x, _)| *x == k) {
                                None => model.0.push((k, v)),
                                Some(i) => {
                                    let l = &mut model.0[i].1;
                                    l.extend(v);
                                    l.sort();
                                    l.dedup();
                                }
                            }
                        }
                    }
                    _ => {
                        m.normalize();
                        for (_, l) in model.0.iter_mut() {
                            l.sort();
                            l.dedup();
                        }
                    }
                }
                same(&m, &model);
            }
            let c = m.clone();
            proptest::prop_assert_eq!(&c, &m);
        }
    }

    #[test]
    fn builder_duplicates_keep_first_position_last_value() {
        let mut b = Builder::default();
        for (k, ds) in [
            ("/a", &["aa"][..]),
            ("/b", &["bb"]),
            ("/a", &["cc"]),
            ("/c", &[]),
            ("/b", &["dd", "ee"]),
        ] {
            b.begin(k);
            for d in ds {
                b.digest(d);
            }
        }
        let m = b.finish();
        assert_eq!(m.len(), 3);
        assert_eq!(m.get("/a").unwrap(), ["cc"]);
        assert_eq!(m.get("/b").unwrap(), ["dd", "ee"]);
        assert!(m.get("/c").unwrap().is_empty());
        assert_eq!(
            m.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["/a", "/b", "/c"]
        );
        let h = DigestMap::hash_name(b"/b");
        m.prefetch(h);
        assert_eq!(m.get_hashed(h, "/b").unwrap().first(), Some("dd"));
    }
}
