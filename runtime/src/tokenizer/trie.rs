//! Byte tries: the one SentencePiece stores in its model file (a darts-clone double array, read
//! as it is), and a plain one built here for the vocabulary (SentencePiece builds a double array
//! at load time too; any trie enumerating the same prefixes gives the same segmentation).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// A darts-clone `DoubleArray` as stored in `precompiled_charsmap`: little-endian `u32` units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DoubleArray {
    units: Vec<u32>,
}

impl DoubleArray {
    /// Wraps the units (the blob's length is a multiple of 4; extra bytes are ignored, as darts
    /// ignores them).
    pub(crate) fn from_le_bytes(blob: &[u8]) -> Self {
        let units = blob
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        DoubleArray { units }
    }

    fn unit(&self, pos: u32) -> Option<u32> {
        self.units.get(pos as usize).copied()
    }

    /// darts' `commonPrefixSearch`: calls `found(value, prefix_len)` for every key that is a
    /// prefix of `key`, shortest first, and returns how many there were. A unit index beyond the
    /// array (only in a corrupt blob) ends the search.
    pub(crate) fn common_prefix_search(&self, key: &[u8], mut found: impl FnMut(u32, usize)) {
        let Some(root) = self.unit(0) else { return };
        let mut pos = offset(root);
        for (i, &b) in key.iter().enumerate() {
            pos ^= u32::from(b);
            let Some(unit) = self.unit(pos) else { return };
            if label(unit) != u32::from(b) {
                return;
            }
            pos ^= offset(unit);
            if has_leaf(unit) {
                let Some(leaf) = self.unit(pos) else { return };
                found(value(leaf), i + 1);
            }
        }
    }
}

// The unit layout of darts-clone (`DoubleArrayUnit`).
fn has_leaf(unit: u32) -> bool {
    (unit >> 8) & 1 == 1
}
fn value(unit: u32) -> u32 {
    unit & ((1 << 31) - 1)
}
fn label(unit: u32) -> u32 {
    unit & ((1 << 31) | 0xff)
}
fn offset(unit: u32) -> u32 {
    (unit >> 10) << ((unit & (1 << 9)) >> 6)
}

/// A byte trie mapping keys to ids, children kept sorted in one flat array.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trie {
    nodes: Vec<Node>,
    /// `(label, child node)` per edge; a node's edges are contiguous and sorted by label.
    edges: Vec<(u8, u32)>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    first_edge: u32,
    num_edges: u32,
    /// The id stored at this node, if a key ends here.
    value: Option<u32>,
}

impl Trie {
    /// Builds the trie; a later duplicate key overwrites an earlier one (callers reject
    /// duplicates first).
    pub(crate) fn new<'k>(keys: impl IntoIterator<Item = (&'k [u8], u32)>) -> Self {
        let mut tmp: Vec<(BTreeMap<u8, u32>, Option<u32>)> = alloc::vec![(BTreeMap::new(), None)];
        for (key, id) in keys {
            let mut n = 0usize;
            for &b in key {
                n = match tmp[n].0.get(&b) {
                    Some(&c) => c as usize,
                    None => {
                        let c = tmp.len();
                        tmp.push((BTreeMap::new(), None));
                        tmp[n].0.insert(b, c as u32);
                        c
                    }
                };
            }
            tmp[n].1 = Some(id);
        }
        let mut trie = Trie::default();
        for (children, value) in tmp {
            trie.nodes.push(Node {
                first_edge: trie.edges.len() as u32,
                num_edges: children.len() as u32,
                value,
            });
            trie.edges.extend(children);
        }
        trie
    }

    fn child(&self, node: u32, b: u8) -> Option<u32> {
        let n = self.nodes[node as usize];
        let edges = &self.edges[n.first_edge as usize..(n.first_edge + n.num_edges) as usize];
        edges
            .binary_search_by_key(&b, |&(l, _)| l)
            .ok()
            .map(|i| edges[i].1)
    }

    /// Calls `found(id, prefix_len)` for every key that is a prefix of `text`, shortest first.
    pub(crate) fn common_prefixes(&self, text: &[u8], mut found: impl FnMut(u32, usize)) {
        if self.nodes.is_empty() {
            return;
        }
        let mut node = 0;
        for (i, &b) in text.iter().enumerate() {
            match self.child(node, b) {
                Some(c) => node = c,
                None => return,
            }
            if let Some(v) = self.nodes[node as usize].value {
                found(v, i + 1);
            }
        }
    }

    /// The id of exactly `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<u32> {
        if self.nodes.is_empty() {
            return None;
        }
        let mut node = 0;
        for &b in key {
            node = self.child(node, b)?;
        }
        self.nodes[node as usize].value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trie_finds_every_prefix_shortest_first() {
        let t = Trie::new([(&b"a"[..], 1), (b"ab", 2), (b"abcd", 3), (b"b", 4)]);
        let mut got = Vec::new();
        t.common_prefixes(b"abcde", |v, n| got.push((v, n)));
        assert_eq!(got, [(1, 1), (2, 2), (3, 4)]);
        assert_eq!(t.get(b"abc"), None);
        assert_eq!(t.get(b"abcd"), Some(3));
        assert_eq!(t.get(b""), None);
        got.clear();
        t.common_prefixes(b"xa", |v, n| got.push((v, n)));
        assert!(got.is_empty());
    }

    #[test]
    fn corrupt_double_array_ends_the_search() {
        // Root offset points far outside the array: no panic, no results.
        let da = DoubleArray::from_le_bytes(&0xffff_fc00u32.to_le_bytes());
        let mut n = 0;
        da.common_prefix_search(b"abc", |_, _| n += 1);
        assert_eq!(n, 0);
        DoubleArray::from_le_bytes(&[]).common_prefix_search(b"a", |_, _| n += 1);
        assert_eq!(n, 0);
    }
}
