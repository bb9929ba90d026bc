//! Hash trees stored in pages, so that any leaf's reduced hash tree is a few reads.
//!
//! The tree is the verifier's [`HashTree`] (RFC 4998 §4.2: a node is the hash of its children's
//! sorted concatenation; a lone node is carried up unhashed). Only every
//! [`PAGE_LEVELS`]-th level is stored, cut into pages of [`PAGE_WIDTH`] = 2^PAGE_LEVELS
//! nodes; the levels in between are recomputed from one page when a path is needed. Pages are
//! aligned subtrees, so the hash tree of one page is exactly that part of the whole tree.
//!
//! For a tree of n leaves a path costs ⌈log₂₅₆ n⌉ page reads (3 for a million documents)
//! and at most 255 hashes per read, and the stored nodes are n·(1 + 1/256 + …) hashes.

use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::hashtree::{node_hash, HashTree, HashTreeError};
use rayon::prelude::*;

/// Levels per page.
pub const PAGE_LEVELS: u8 = 8;
/// Nodes per page.
pub const PAGE_WIDTH: usize = 1 << PAGE_LEVELS;

/// A tree cut into pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PagedTree {
    /// The root.
    pub root: Vec<u8>,
    /// (level, page number, node hashes concatenated).
    pub pages: Vec<(u8, u32, Vec<u8>)>,
}

fn page_root(digest: DigestAlgorithm, page: &[u8]) -> Result<Vec<u8>, HashTreeError> {
    Ok(page_tree(digest, page)?.root().to_vec())
}

/// Builds the pages of the tree over `leaves` (concatenated, each `digest` output long).
pub fn build(digest: DigestAlgorithm, leaves: &[u8]) -> Result<PagedTree, HashTreeError> {
    build_with(digest, leaves, PAGE_LEVELS)
}

/// [`build`] with `levels` levels per page (tests use small pages).
pub fn build_with(
    digest: DigestAlgorithm,
    leaves: &[u8],
    levels: u8,
) -> Result<PagedTree, HashTreeError> {
    let len = digest.output_len();
    if leaves.is_empty() {
        return Err(HashTreeError::Empty);
    }
    if leaves.len() % len != 0 {
        return Err(HashTreeError::Length {
            digest: digest.name(),
            want: len,
            got: leaves.len() % len,
        });
    }
    let width = 1usize << levels;
    let mut pages = Vec::new();
    let mut level: u8 = 0;
    let mut nodes = leaves.to_vec();
    loop {
        for (i, page) in nodes.chunks(width * len).enumerate() {
            pages.push((level, i as u32, page.to_vec()));
        }
        if nodes.len() == len {
            return Ok(PagedTree { root: nodes, pages });
        }
        let roots: Result<Vec<Vec<u8>>, HashTreeError> = nodes
            .par_chunks(width * len)
            .map(|page| page_root(digest, page))
            .collect();
        nodes = roots?.concat();
        level = level.checked_add(levels).ok_or(HashTreeError::Empty)?;
    }
}

/// The hash tree of one stored page (what [`siblings`] reads through; callers cache it, since
/// the paths of neighbouring leaves share their pages).
pub fn page_tree(digest: DigestAlgorithm, page: &[u8]) -> Result<HashTree, HashTreeError> {
    let nodes: Vec<&[u8]> = page.chunks(digest.output_len()).collect();
    HashTree::build(digest, &nodes)
}

/// The siblings on the path of leaf `index` of a tree of `leaves` leaves, bottom up, reading
/// each page's tree ([`page_tree`]) through `read(level, page)`.
pub fn siblings<E, T>(
    leaves: u64,
    index: u64,
    read: impl FnMut(u8, u32) -> Result<T, E>,
) -> Result<Vec<Vec<u8>>, E>
where
    E: From<HashTreeError>,
    T: std::ops::Deref<Target = HashTree>,
{
    siblings_with(leaves, index, PAGE_LEVELS, read)
}

/// [`siblings`] with `levels` levels per page.
pub fn siblings_with<E, T>(
    leaves: u64,
    index: u64,
    levels: u8,
    mut read: impl FnMut(u8, u32) -> Result<T, E>,
) -> Result<Vec<Vec<u8>>, E>
where
    E: From<HashTreeError>,
    T: std::ops::Deref<Target = HashTree>,
{
    let width = 1u64 << levels;
    if index >= leaves {
        return Err(HashTreeError::NoSuchLeaf {
            index: index as usize,
            leaves: leaves as usize,
        }
        .into());
    }
    let mut out = Vec::new();
    let (mut i, mut count, mut level) = (index, leaves, 0u8);
    while count > 1 {
        let tree = read(level, (i / width) as u32)?;
        let local = (i % width) as usize;
        if tree.leaves() > 1 {
            for (n, list) in tree.reduced(local)?.into_iter().enumerate() {
                // The first list is [own value, sibling]; later lists are [sibling].
                if let Some(s) = list.into_iter().nth(usize::from(n == 0)) {
                    out.push(s);
                }
            }
        } else if local != 0 {
            return Err(HashTreeError::NoSuchLeaf {
                index: local,
                leaves: tree.leaves(),
            }
            .into());
        }
        i /= width;
        count = count.div_ceil(width);
        level = level.saturating_add(levels);
    }
    Ok(out)
}

/// The leaf a group of hashes makes: the group's node when it has two or more members, else
/// the one hash itself (a single-element list is never written; DESIGN §3).
pub fn group_leaf(digest: DigestAlgorithm, group: &[Vec<u8>]) -> Vec<u8> {
    if group.len() == 1 {
        group[0].clone()
    } else {
        let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
        node_hash(digest, &refs)
    }
}

/// The reduced hash tree (RFC 4998 `SEQUENCE OF PartialHashtree`) of a leaf made from
/// `group` (see [`group_leaf`]) with the `siblings` of its path:
/// - a group of two or more hashes is the first list, and each sibling a list of its own;
/// - a single hash shares the first list with its first sibling;
/// - a single hash without siblings (a tree of one leaf) has no reduced tree: the timestamp
///   covers it directly.
pub fn reduced_tree(group: Vec<Vec<u8>>, siblings: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
    let mut siblings = siblings.into_iter();
    let mut lists = Vec::new();
    if group.len() >= 2 {
        lists.push(group);
    } else {
        match siblings.next() {
            None => return Vec::new(),
            Some(s) => lists.push(group.into_iter().chain([s]).collect()),
        }
    }
    lists.extend(siblings.map(|s| vec![s]));
    lists
}

#[cfg(test)]
mod tests {
    use super::*;
    use hozon_verifier::hashtree::root_from_reduced;

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| DigestAlgorithm::Sha256.digest(&(i as u64).to_be_bytes()))
            .collect()
    }

    /// The paged tree has the same root and paths as the whole tree, for every size up to
    /// a few pages deep and every page height tried.
    #[test]
    fn pages_give_the_whole_trees_root_and_paths() {
        let d = DigestAlgorithm::Sha256;
        for levels in [1u8, 2, 3] {
            for n in 1..=70usize {
                let l = leaves(n);
                let whole = HashTree::build(d, &l).unwrap();
                let paged = build_with(d, &l.concat(), levels).unwrap();
                assert_eq!(paged.root, whole.root(), "n={n} levels={levels}");
                for (i, leaf) in l.iter().enumerate() {
                    let read = |level: u8, page: u32| -> Result<Box<HashTree>, HashTreeError> {
                        let bytes = paged
                            .pages
                            .iter()
                            .find(|(lv, p, _)| *lv == level && *p == page)
                            .map(|(_, _, b)| b.clone())
                            .expect("page exists");
                        Ok(Box::new(page_tree(d, &bytes)?))
                    };
                    let sib = siblings_with(n as u64, i as u64, levels, read).unwrap();
                    let reduced = reduced_tree(vec![leaf.clone()], sib);
                    assert_eq!(reduced, whole.reduced(i).unwrap(), "n={n} i={i}");
                    let found = root_from_reduced(d, leaf, &reduced, |r| r == whole.root())
                        .unwrap()
                        .expect("path leads to the root");
                    assert!(found.leniency.is_empty());
                }
            }
        }
    }

    #[test]
    fn a_group_is_the_first_list() {
        let d = DigestAlgorithm::Sha256;
        let group = leaves(3);
        let sibling = d.digest(b"sibling");
        let leaf = group_leaf(d, &group);
        let tree = HashTree::build(d, &[leaf.clone(), sibling.clone()]).unwrap();
        let reduced = reduced_tree(group.clone(), vec![sibling]);
        assert_eq!(reduced.len(), 2);
        for h in &group {
            assert!(root_from_reduced(d, h, &reduced, |r| r == tree.root())
                .unwrap()
                .is_some());
        }
        // One hash and no sibling: no reduced tree at all.
        assert!(reduced_tree(vec![leaf], vec![]).is_empty());
    }
}
