//! Reads a bbolt file (etcd's backend; `etcdctl snapshot save` against etcd
//! writes one), read-only and from memory: just enough of bbolt 1.3's format
//! to walk a bucket's key/value pairs in key order.
//!
//! The file is pages of `page_size` bytes, little-endian. A page starts with
//! a 16-byte header (id u64, flags u16, count u16, overflow u32) and then
//! `count` 16-byte elements whose `pos` points (from the element) at their
//! key and value. Pages 0 and 1 hold two copies of the meta; the valid one
//! with the higher transaction id names the root bucket's page. A bucket is
//! a leaf value flagged as one: its root page, or (root 0) an inline page
//! right after its 16-byte header.

const HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const BUCKET_LEAF: u32 = 0x01;
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
/// Deeper than any real tree: a corrupt file must not recurse forever.
const MAX_DEPTH: usize = 64;

/// What is wrong with a bbolt file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoltError {
    #[error("too short for a bbolt file")]
    TooShort,
    #[error("not a bbolt file (no meta page)")]
    NoMeta,
    #[error("bbolt format version {found} (only {expected}, etcd 3.x's, is read)")]
    Version { found: u32, expected: u32 },
    #[error("the bbolt meta page's checksum does not match (damaged file)")]
    MetaChecksum,
    #[error("bbolt page size {0} is not plausible")]
    PageSize(usize),
    #[error("page {0} is beyond the end of the file (cut short?)")]
    PageBeyondEnd(u64),
    #[error("page {0} runs past the end of the file (cut short?)")]
    PagePastEnd(u64),
    #[error("page {0} carries another page's id (damaged file)")]
    PageId(u64),
    #[error("the tree is deeper than any real one (damaged file)")]
    TooDeep,
    #[error("a page's elements run past its end (damaged file)")]
    ElementsPastEnd,
    #[error("a bucket points at a page that is neither a branch nor a leaf (flags {flags:#x}; damaged file)")]
    NeitherBranchNorLeaf { flags: u16 },
    #[error("a bucket's header is cut short (damaged file)")]
    BucketHeader,
}

/// Whether `data` starts like a bbolt file (the first meta's magic).
pub fn looks_like_bbolt(data: &[u8]) -> bool {
    u32_at(data, HEADER).is_some_and(|magic| magic == MAGIC)
}

pub struct Bolt<'a> {
    data: &'a [u8],
    page_size: usize,
    root: Bucket<'a>,
}

#[derive(Clone, Copy)]
pub struct Bucket<'a>(Node<'a>);

#[derive(Clone, Copy)]
enum Node<'a> {
    Page(u64),
    Inline(&'a [u8]),
}

impl<'a> Bolt<'a> {
    pub fn open(data: &'a [u8]) -> Result<Bolt<'a>, BoltError> {
        let first = Meta::read(data, 0);
        // The second copy is one page further; if the first is damaged,
        // bbolt assumes the OS page size.
        let page_size = first.as_ref().map_or(4096, |m| m.page_size);
        let second = Meta::read(data, page_size);
        let meta = match (first, second) {
            (Ok(a), Ok(b)) => {
                if a.txid >= b.txid {
                    a
                } else {
                    b
                }
            }
            (Ok(m), Err(_)) | (Err(_), Ok(m)) => m,
            (Err(err), Err(_)) => return Err(err),
        };
        Ok(Bolt {
            data,
            page_size: meta.page_size,
            root: Bucket(Node::Page(meta.root)),
        })
    }

    /// A bucket of the root bucket, if there is one by that name.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'a>>, BoltError> {
        let mut found = None;
        self.walk(self.root.0, 0, &mut |flags,
                                        key,
                                        value|
         -> Result<(), BoltError> {
            if key == name && flags & BUCKET_LEAF != 0 {
                found = Some(bucket_from(value)?);
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Every key/value pair of `bucket` in key order (nested buckets are
    /// skipped). `visit`'s errors, and the file's, come back as `E`.
    pub fn for_each<E: From<BoltError>>(
        &self,
        bucket: Bucket<'a>,
        mut visit: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.walk(bucket.0, 0, &mut |flags, key, value| {
            if flags & BUCKET_LEAF == 0 {
                visit(key, value)?;
            }
            Ok(())
        })
    }

    fn page(&self, id: u64) -> Result<&'a [u8], BoltError> {
        let start = usize::try_from(id)
            .ok()
            .and_then(|id| id.checked_mul(self.page_size))
            .filter(|start| start + HEADER <= self.data.len())
            .ok_or(BoltError::PageBeyondEnd(id))?;
        let overflow = u32_at(self.data, start + 12).unwrap_or(0) as usize;
        let end = start + (overflow + 1) * self.page_size;
        let page = self
            .data
            .get(start..end)
            .ok_or(BoltError::PagePastEnd(id))?;
        if u64_at(page, 0) != Some(id) {
            return Err(BoltError::PageId(id));
        }
        Ok(page)
    }

    fn walk<E: From<BoltError>>(
        &self,
        node: Node<'a>,
        depth: usize,
        visit: &mut dyn FnMut(u32, &'a [u8], &'a [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if depth > MAX_DEPTH {
            return Err(BoltError::TooDeep.into());
        }
        let page = match node {
            Node::Page(id) => self.page(id)?,
            Node::Inline(page) => page,
        };
        let damaged = || E::from(BoltError::ElementsPastEnd);
        let flags = u16_at(page, 8).ok_or_else(damaged)?;
        let count = u16_at(page, 10).ok_or_else(damaged)? as usize;
        for i in 0..count {
            let at = HEADER + i * ELEMENT;
            if flags & LEAF_PAGE != 0 {
                let (Some(leaf_flags), Some(pos), Some(key_len), Some(value_len)) = (
                    u32_at(page, at),
                    u32_at(page, at + 4),
                    u32_at(page, at + 8),
                    u32_at(page, at + 12),
                ) else {
                    return Err(damaged());
                };
                let key_at = at + pos as usize;
                let value_at = key_at + key_len as usize;
                let key = page.get(key_at..value_at).ok_or_else(damaged)?;
                let value = page
                    .get(value_at..value_at + value_len as usize)
                    .ok_or_else(damaged)?;
                visit(leaf_flags, key, value)?;
            } else if flags & BRANCH_PAGE != 0 {
                let child = u64_at(page, at + 8).ok_or_else(damaged)?;
                self.walk(Node::Page(child), depth + 1, visit)?;
            } else {
                return Err(BoltError::NeitherBranchNorLeaf { flags }.into());
            }
        }
        Ok(())
    }
}

/// A bucket's value: its root page id and sequence, then the inline page
/// when the root is 0.
fn bucket_from(value: &[u8]) -> Result<Bucket<'_>, BoltError> {
    let root = u64_at(value, 0).ok_or(BoltError::BucketHeader)?;
    Ok(Bucket(if root == 0 {
        Node::Inline(value.get(HEADER..).unwrap_or_default())
    } else {
        Node::Page(root)
    }))
}

struct Meta {
    page_size: usize,
    root: u64,
    txid: u64,
}

impl Meta {
    fn read(data: &[u8], page_start: usize) -> Result<Meta, BoltError> {
        let meta = data
            .get(page_start + HEADER..page_start + HEADER + 64)
            .ok_or(BoltError::TooShort)?;
        let word = |at| u32_at(meta, at).unwrap_or(0);
        let long = |at| u64_at(meta, at).unwrap_or(0);
        if u16_at(data, page_start + 8) != Some(META_PAGE) || word(0) != MAGIC {
            return Err(BoltError::NoMeta);
        }
        if word(4) != VERSION {
            return Err(BoltError::Version {
                found: word(4),
                expected: VERSION,
            });
        }
        if fnv64a(&meta[..56]) != long(56) {
            return Err(BoltError::MetaChecksum);
        }
        let page_size = word(8) as usize;
        if !(512..=(1 << 20)).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(BoltError::PageSize(page_size));
        }
        Ok(Meta {
            page_size,
            root: long(16),
            txid: long(48),
        })
    }
}

fn fnv64a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-page leaf with the given (flags, key, value) elements, laid out
    /// as bbolt lays them: elements first, then keys and values.
    fn leaf(id: u64, page_size: usize, items: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
        let mut page = vec![0; HEADER + items.len() * ELEMENT];
        page[..8].copy_from_slice(&id.to_le_bytes());
        page[8..10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
        page[10..12].copy_from_slice(&(items.len() as u16).to_le_bytes());
        for (i, (flags, key, value)) in items.iter().enumerate() {
            let at = HEADER + i * ELEMENT;
            let pos = (page.len() - at) as u32;
            page[at..at + 4].copy_from_slice(&flags.to_le_bytes());
            page[at + 4..at + 8].copy_from_slice(&pos.to_le_bytes());
            page[at + 8..at + 12].copy_from_slice(&(key.len() as u32).to_le_bytes());
            page[at + 12..at + 16].copy_from_slice(&(value.len() as u32).to_le_bytes());
            page.extend_from_slice(key);
            page.extend_from_slice(value);
        }
        page.resize(page.len().div_ceil(page_size) * page_size, 0);
        page
    }

    fn meta(id: u64, page_size: usize, root: u64, txid: u64) -> Vec<u8> {
        let mut page = vec![0; page_size];
        page[..8].copy_from_slice(&id.to_le_bytes());
        page[8..10].copy_from_slice(&META_PAGE.to_le_bytes());
        let mut fields = Vec::new();
        fields.extend_from_slice(&MAGIC.to_le_bytes());
        fields.extend_from_slice(&VERSION.to_le_bytes());
        fields.extend_from_slice(&(page_size as u32).to_le_bytes());
        fields.extend_from_slice(&0u32.to_le_bytes());
        fields.extend_from_slice(&root.to_le_bytes());
        fields.extend_from_slice(&0u64.to_le_bytes()); // sequence
        fields.extend_from_slice(&0u64.to_le_bytes()); // freelist
        fields.extend_from_slice(&4u64.to_le_bytes()); // high water mark
        fields.extend_from_slice(&txid.to_le_bytes());
        let sum = fnv64a(&fields);
        fields.extend_from_slice(&sum.to_le_bytes());
        page[HEADER..HEADER + 64].copy_from_slice(&fields);
        page
    }

    /// Meta 0 (old, root page 2), meta 1 (newer, root page 3); the root
    /// holds an inline bucket "b" with two pairs.
    fn file() -> Vec<u8> {
        let size = 512;
        let inline = {
            let mut value = vec![0; HEADER];
            let page = leaf(0, 1, &[(0, b"k1", b"v1"), (0, b"k2", b"v2")]);
            value.extend_from_slice(&page);
            value
        };
        let mut data = meta(0, size, 2, 7);
        data.extend(meta(1, size, 3, 8));
        data.extend(leaf(2, size, &[]));
        data.extend(leaf(3, size, &[(BUCKET_LEAF, b"b", &inline)]));
        data
    }

    #[test]
    fn reads_the_newer_meta_and_an_inline_bucket() {
        let data = file();
        assert!(looks_like_bbolt(&data));
        let bolt = Bolt::open(&data).unwrap();
        let bucket = bolt.bucket(b"b").unwrap().expect("bucket b");
        let mut pairs = Vec::new();
        bolt.for_each(bucket, |k, v| {
            pairs.push((k.to_vec(), v.to_vec()));
            Ok::<(), BoltError>(())
        })
        .unwrap();
        assert_eq!(
            pairs,
            [
                (b"k1".to_vec(), b"v1".to_vec()),
                (b"k2".to_vec(), b"v2".to_vec())
            ]
        );
        assert!(bolt.bucket(b"missing").unwrap().is_none());
    }

    #[test]
    fn a_damaged_meta_falls_back_to_the_other_copy() {
        let mut data = file();
        // Break meta 1's checksum: meta 0 (root page 2, empty) is used.
        data[512 + HEADER + 20] ^= 0xff;
        let bolt = Bolt::open(&data).unwrap();
        assert!(bolt.bucket(b"b").unwrap().is_none());
        data[HEADER + 20] ^= 0xff;
        let err = Bolt::open(&data).err().unwrap().to_string();
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn a_file_cut_short_is_refused_not_read_past() {
        let mut data = file();
        data.truncate(3 * 512 + 10);
        let err = Bolt::open(&data)
            .and_then(|b| b.bucket(b"b"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("cut short"), "{err}");
        assert!(!looks_like_bbolt(b"ucsnap"));
    }
}
