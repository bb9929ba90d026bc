//! RFC 4998 hash trees (§4.2–4.3): many documents share one timestamp through a binary
//! Merkle tree whose root is timestamped; each document keeps its *reduced hash tree*, the
//! list of partial hash trees from its leaf to the root.
//!
//! - A node is `H(children's hashes, sorted in binary ascending order and concatenated)`.
//! - Leaves are paired left to right; an odd node at the end of a level is carried up a level
//!   *unhashed* (never `H(x)` of a lone node, which readers disagree about).
//! - The reduced hash tree of leaf `h` is: first list `[h, sibling]` (at the first level where
//!   `h` has a sibling), then one list per higher level holding the sibling of the path node
//!   (levels where the path node is carried up have no list). So no first list ever has a
//!   single element; a tree of one leaf has no reduced hash tree at all: the timestamp covers
//!   `h` itself (DESIGN §3).
//! - Reading ([`root_from_reduced`]) follows RFC 4998 §4.3 and accepts what others write: a
//!   single-element first list taken as the leaf itself, unhashed (Bouncy Castle, Governikus),
//!   is reported as [`Leniency::SingleFirstListNotHashed`]; a higher list with more than one
//!   value is treated as siblings of the path node, unless it already contains the path node.
//!
//! Pure: no I/O. Memory: the tree keeps every level in one contiguous buffer (a million
//! SHA-256 leaves take 64 MB).

use hozon_tsa::signer::DigestAlgorithm;

/// Why a tree could not be built or a reduced tree not evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashTreeError {
    /// A tree needs at least one leaf.
    #[error("a hash tree needs at least one leaf")]
    Empty,
    /// A leaf or a listed hash has the wrong length for the digest.
    #[error("hash of {got} bytes where {digest} gives {want}")]
    Length {
        /// The digest's name.
        digest: &'static str,
        /// Its output length.
        want: usize,
        /// The length found.
        got: usize,
    },
    /// The document's hash is not in the first partial hash tree (RFC 4998 §4.3 step 2).
    #[error("the document's hash is not in the first partial hash tree")]
    LeafNotInFirstList,
    /// A partial hash tree is empty.
    #[error("partial hash tree {0} is empty")]
    EmptyList(usize),
    /// Index out of range.
    #[error("leaf {index} of a tree of {leaves}")]
    NoSuchLeaf {
        /// The index asked for.
        index: usize,
        /// Number of leaves.
        leaves: usize,
    },
}

/// A form of reduced hash tree that is accepted but not written by hozon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Leniency {
    /// The first partial hash tree had one value (the document's hash) and was taken as the
    /// node itself, not re-hashed, as Bouncy Castle and Governikus write it.
    SingleFirstListNotHashed,
}

/// `H(sorted concatenation of hashes)`.
pub fn node_hash(digest: DigestAlgorithm, hashes: &[&[u8]]) -> Vec<u8> {
    let mut sorted: Vec<&[u8]> = hashes.to_vec();
    sorted.sort_unstable();
    let total: usize = sorted.iter().map(|h| h.len()).sum();
    let mut buf = Vec::with_capacity(total);
    for h in sorted {
        buf.extend_from_slice(h);
    }
    digest.digest(&buf)
}

fn pair_hash(digest: DigestAlgorithm, a: &[u8], b: &[u8], buf: &mut Vec<u8>) -> Vec<u8> {
    buf.clear();
    if a <= b {
        buf.extend_from_slice(a);
        buf.extend_from_slice(b);
    } else {
        buf.extend_from_slice(b);
        buf.extend_from_slice(a);
    }
    digest.digest(buf)
}

/// A binary hash tree over leaf hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashTree {
    digest: DigestAlgorithm,
    len: usize,
    /// `levels[0]` is the leaves; each level is `count * len` bytes; the last has one node.
    levels: Vec<Vec<u8>>,
}

impl HashTree {
    /// Builds the tree over `leaves` (each one `digest` output long; the caller hashed the
    /// documents).
    pub fn build<L: AsRef<[u8]>>(
        digest: DigestAlgorithm,
        leaves: &[L],
    ) -> Result<HashTree, HashTreeError> {
        if leaves.is_empty() {
            return Err(HashTreeError::Empty);
        }
        let len = digest.output_len();
        let mut level = Vec::with_capacity(leaves.len() * len);
        for leaf in leaves {
            let leaf = leaf.as_ref();
            if leaf.len() != len {
                return Err(HashTreeError::Length {
                    digest: digest.name(),
                    want: len,
                    got: leaf.len(),
                });
            }
            level.extend_from_slice(leaf);
        }
        let mut levels = vec![level];
        let mut buf = Vec::with_capacity(2 * len);
        loop {
            let prev = levels.last().map(|l| l.as_slice()).unwrap_or_default();
            let count = prev.len() / len;
            if count <= 1 {
                break;
            }
            let mut next = Vec::with_capacity(count.div_ceil(2) * len);
            for pair in prev.chunks(2 * len) {
                if pair.len() == 2 * len {
                    next.extend_from_slice(&pair_hash(
                        digest,
                        &pair[..len],
                        &pair[len..],
                        &mut buf,
                    ));
                } else {
                    next.extend_from_slice(pair);
                }
            }
            levels.push(next);
        }
        Ok(HashTree {
            digest,
            len,
            levels,
        })
    }

    /// The digest algorithm.
    pub fn digest(&self) -> DigestAlgorithm {
        self.digest
    }

    /// Number of leaves.
    pub fn leaves(&self) -> usize {
        self.levels[0].len() / self.len
    }

    /// The root: the value to timestamp (the leaf itself for a one-leaf tree).
    pub fn root(&self) -> &[u8] {
        let last = self.levels.last().map(|l| l.as_slice()).unwrap_or_default();
        &last[..self.len]
    }

    fn node(&self, level: usize, index: usize) -> &[u8] {
        &self.levels[level][index * self.len..(index + 1) * self.len]
    }

    /// The reduced hash tree of leaf `index` (see the module documentation); empty for a
    /// one-leaf tree.
    pub fn reduced(&self, index: usize) -> Result<Vec<Vec<Vec<u8>>>, HashTreeError> {
        if index >= self.leaves() {
            return Err(HashTreeError::NoSuchLeaf {
                index,
                leaves: self.leaves(),
            });
        }
        let mut lists: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut i = index;
        for level in 0..self.levels.len() - 1 {
            let count = self.levels[level].len() / self.len;
            let sibling = i ^ 1;
            if sibling < count {
                let s = self.node(level, sibling).to_vec();
                if lists.is_empty() {
                    lists.push(vec![self.node(0, index).to_vec(), s]);
                } else {
                    lists.push(vec![s]);
                }
            }
            i /= 2;
        }
        Ok(lists)
    }
}

/// The root computed from a document hash and its reduced hash tree, and which lenient
/// readings were needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recomputed {
    /// The root (compare it with the timestamp's imprint).
    pub root: Vec<u8>,
    /// Lenient forms used.
    pub leniency: Vec<Leniency>,
}

/// Computes the root for `leaf` from `reduced` (RFC 4998 §4.3). An empty `reduced` gives the
/// leaf itself. With a single-element first list two readings exist (the strict `H(h)` and
/// the lenient `h`); `accept` decides which root is right, so the caller passes a check
/// against the timestamp's imprint.
pub fn root_from_reduced<L: AsRef<[u8]>>(
    digest: DigestAlgorithm,
    leaf: &[u8],
    reduced: &[Vec<L>],
    accept: impl Fn(&[u8]) -> bool,
) -> Result<Option<Recomputed>, HashTreeError> {
    let len = digest.output_len();
    let check = |h: &[u8]| {
        if h.len() == len {
            Ok(())
        } else {
            Err(HashTreeError::Length {
                digest: digest.name(),
                want: len,
                got: h.len(),
            })
        }
    };
    check(leaf)?;
    for (n, list) in reduced.iter().enumerate() {
        if list.is_empty() {
            return Err(HashTreeError::EmptyList(n));
        }
        for h in list {
            check(h.as_ref())?;
        }
    }
    let Some((first, rest)) = reduced.split_first() else {
        return Ok(accept(leaf).then(|| Recomputed {
            root: leaf.to_vec(),
            leniency: vec![],
        }));
    };
    if !first.iter().any(|h| h.as_ref() == leaf) {
        return Err(HashTreeError::LeafNotInFirstList);
    }
    let climb = |start: Vec<u8>| -> Vec<u8> {
        let mut node = start;
        for list in rest {
            let mut values: Vec<&[u8]> = list.iter().map(|h| h.as_ref()).collect();
            if !values.contains(&node.as_slice()) {
                values.push(&node);
            }
            node = node_hash(digest, &values);
        }
        node
    };
    let first_refs: Vec<&[u8]> = first.iter().map(|h| h.as_ref()).collect();
    let strict = climb(node_hash(digest, &first_refs));
    if accept(&strict) {
        return Ok(Some(Recomputed {
            root: strict,
            leniency: vec![],
        }));
    }
    if first.len() == 1 {
        let lenient = climb(leaf.to_vec());
        if accept(&lenient) {
            return Ok(Some(Recomputed {
                root: lenient,
                leniency: vec![Leniency::SingleFirstListNotHashed],
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: DigestAlgorithm = DigestAlgorithm::Sha256;

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| D.digest(format!("document {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn every_leaf_recomputes_the_root() {
        for n in 1..=33 {
            let l = leaves(n);
            let tree = HashTree::build(D, &l).unwrap();
            assert_eq!(tree.leaves(), n);
            for (i, leaf) in l.iter().enumerate() {
                let reduced = tree.reduced(i).unwrap();
                if n == 1 {
                    assert!(reduced.is_empty());
                } else {
                    assert_eq!(reduced[0].len(), 2, "first list is [leaf, sibling]");
                    assert!(reduced[1..].iter().all(|l| l.len() == 1));
                }
                let got = root_from_reduced(D, leaf, &reduced, |r| r == tree.root())
                    .unwrap()
                    .expect("root matches");
                assert!(got.leniency.is_empty());
                // Another leaf's hash is not in the first list.
                let other = D.digest(b"not in the tree");
                if n > 1 {
                    assert_eq!(
                        root_from_reduced(D, &other, &reduced, |_| true),
                        Err(HashTreeError::LeafNotInFirstList)
                    );
                }
            }
        }
    }

    /// The tree of three leaves a, b, c is H(H(a,b), c): c is carried up unhashed.
    #[test]
    fn lone_nodes_are_carried_up_unhashed() {
        let l = leaves(3);
        let tree = HashTree::build(D, &l).unwrap();
        let ab = node_hash(D, &[&l[0], &l[1]]);
        assert_eq!(tree.root(), node_hash(D, &[&ab, &l[2]]));
        assert_eq!(tree.reduced(2).unwrap(), vec![vec![l[2].clone(), ab]]);
    }

    #[test]
    fn node_hash_sorts() {
        let (a, b) = (vec![1u8; 32], vec![2u8; 32]);
        assert_eq!(node_hash(D, &[&a, &b]), node_hash(D, &[&b, &a]));
        assert_eq!(node_hash(D, &[&a, &b]), D.digest(&[a.clone(), b].concat()));
    }

    /// A single-element first list as Bouncy Castle writes it for a lone document: the
    /// timestamp covers h itself. Strict reading gives H(h); the lenient one is reported.
    #[test]
    fn single_element_first_list_is_read_leniently() {
        let h = D.digest(b"d");
        let reduced = vec![vec![h.clone()]];
        let got = root_from_reduced(D, &h, &reduced, |r| r == h)
            .unwrap()
            .unwrap();
        assert_eq!(got.leniency, vec![Leniency::SingleFirstListNotHashed]);
        let strict = D.digest(&h);
        let got = root_from_reduced(D, &h, &reduced, |r| r == strict)
            .unwrap()
            .unwrap();
        assert!(got.leniency.is_empty());
        assert_eq!(root_from_reduced(D, &h, &reduced, |_| false).unwrap(), None);
    }

    /// A higher list that repeats the path node (the "member of the next list" reading of
    /// RFC 4998 §4.3) gives the same root as one that does not.
    #[test]
    fn higher_lists_may_repeat_the_path_node() {
        let l = leaves(4);
        let tree = HashTree::build(D, &l).unwrap();
        let mut reduced = tree.reduced(0).unwrap();
        let ab = node_hash(D, &[&l[0], &l[1]]);
        reduced[1].push(ab);
        assert!(root_from_reduced(D, &l[0], &reduced, |r| r == tree.root())
            .unwrap()
            .is_some());
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(
            HashTree::build::<Vec<u8>>(D, &[]).unwrap_err(),
            HashTreeError::Empty
        );
        assert!(matches!(
            HashTree::build(D, &[vec![0u8; 20]]),
            Err(HashTreeError::Length {
                want: 32,
                got: 20,
                ..
            })
        ));
        let tree = HashTree::build(D, &leaves(2)).unwrap();
        assert!(tree.reduced(2).is_err());
        let h = D.digest(b"x");
        assert_eq!(
            root_from_reduced::<Vec<u8>>(D, &h, &[vec![]], |_| true),
            Err(HashTreeError::EmptyList(0))
        );
        assert!(matches!(
            root_from_reduced(D, &h, &[vec![vec![0u8; 3]]], |_| true),
            Err(HashTreeError::Length { .. })
        ));
    }
}
