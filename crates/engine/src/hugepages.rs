//! Backing the model's weights with 2 MiB pages.
//!
//! Generating a token reads every weight once. On 4 KiB pages that is one
//! TLB entry per 4 KiB (24,000 for SmolLM2's 94 MiB, ten times what the TLB
//! holds, each miss a page walk that a VM makes twice as long), and the
//! hardware prefetcher stops at every page boundary. On 2 MiB transparent
//! huge pages the same weights need 47 entries: generation measured 2.5 %
//! faster on SmolLM2-135M and on Gemma 3 270M, 2 cores (bench/README.md).
//!
//! A mapped model file cannot have them (its page cache uses 4 KiB pages on
//! ext4), so the engine loads the weights into anonymous memory instead
//! (llama.cpp's `use_mmap = false`). Debian's default THP mode, `madvise`,
//! gives huge pages only to memory that asks, and llama.cpp neither asks nor
//! says where its buffers are. So [`Advice`] notes the process's anonymous
//! mappings before the load, and afterwards asks for huge pages on the new
//! large ones: `MADV_HUGEPAGE` for what faults in later, `MADV_COLLAPSE`
//! (Linux 6.1+) to move the weights already read. Both keep the memory's
//! contents, so advising a mapping another thread made meanwhile is harmless.
//!
//! Elsewhere (not Linux, THP off) the engine keeps llama.cpp's default, the
//! mapped file, which shares pages with the page cache.

use std::ops::Range;

/// Mappings smaller than this are not worth advising (one huge page).
const HUGE_PAGE: usize = 2 << 20;

/// Whether the kernel would give huge pages to memory that asks for them.
pub fn available() -> bool {
    cfg!(target_os = "linux")
        && std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|mode| thp_mode_allows_advice(&mode))
}

/// `always` or `madvise` is selected (the mode in brackets), not `never`.
fn thp_mode_allows_advice(mode: &str) -> bool {
    mode.contains("[always]") || mode.contains("[madvise]")
}

/// The process's anonymous mappings at one moment, to find what a load added.
#[derive(Debug, Default)]
pub struct Advice {
    before: Vec<Range<usize>>,
}

impl Advice {
    /// Notes the anonymous mappings that exist now.
    pub fn before_load() -> Self {
        Self { before: anonymous_mappings(&read_maps()) }
    }

    /// Asks for huge pages on anonymous memory mapped since [`Advice::before_load`].
    /// Returns the bytes now on huge pages in those ranges (0 where the kernel declined).
    pub fn apply(self) -> usize {
        let added = added_ranges(&self.before, &anonymous_mappings(&read_maps()));
        let mut advised = 0;
        for range in added.iter().filter_map(|range| huge_aligned(range.clone())) {
            advised += advise(range);
        }
        advised
    }
}

/// Ranges of `after` not covered by any range of `before`.
fn added_ranges(before: &[Range<usize>], after: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut added = Vec::new();
    for range in after {
        let mut pieces = vec![range.clone()];
        for old in before {
            pieces = pieces
                .into_iter()
                .flat_map(|piece| {
                    let left = piece.start..piece.end.min(old.start);
                    let right = piece.start.max(old.end)..piece.end;
                    [left, right].into_iter().filter(|part| !part.is_empty())
                })
                .collect();
        }
        added.extend(pieces);
    }
    added
}

/// The whole 2 MiB pages inside `range`, if any.
fn huge_aligned(range: Range<usize>) -> Option<Range<usize>> {
    let start = range.start.checked_add(HUGE_PAGE - 1)? & !(HUGE_PAGE - 1);
    let end = range.end & !(HUGE_PAGE - 1);
    (end > start).then_some(start..end)
}

/// Writable private anonymous mappings (no file, not a stack or vDSO) in `/proc/self/maps` text.
fn anonymous_mappings(maps: &str) -> Vec<Range<usize>> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (addresses, perms) = (fields.next()?, fields.next()?);
            let (_offset, _device, inode) = (fields.next()?, fields.next()?, fields.next()?);
            if fields.next().is_some() || inode != "0" || !perms.starts_with("rw") || !perms.ends_with('p') {
                return None; // file-backed, named ([stack], [heap]…), read-only or shared
            }
            let (start, end) = addresses.split_once('-')?;
            Some(usize::from_str_radix(start, 16).ok()?..usize::from_str_radix(end, 16).ok()?)
        })
        .collect()
}

fn read_maps() -> String {
    std::fs::read_to_string("/proc/self/maps").unwrap_or_default()
}

#[cfg(target_os = "linux")]
fn advise(range: Range<usize>) -> usize {
    let (address, length) = (range.start as *mut libc::c_void, range.len());
    // SAFETY: madvise with MADV_HUGEPAGE or MADV_COLLAPSE changes only how the
    // range is backed, never its contents; on a range that is not (or no
    // longer) mapped it fails with ENOMEM and does nothing.
    let hinted = unsafe { libc::madvise(address, length, libc::MADV_HUGEPAGE) } == 0;
    // SAFETY: as above.
    let collapsed = unsafe { libc::madvise(address, length, libc::MADV_COLLAPSE) } == 0;
    if collapsed {
        return length;
    }
    let error = std::io::Error::last_os_error();
    tracing::debug!(%error, hinted, length, "the kernel did not move this range to huge pages now");
    0
}

#[cfg(not(target_os = "linux"))]
fn advise(_range: Range<usize>) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_private_writable_anonymous_mappings_count() {
        let maps = "\
55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0006000000 rw-p 00000000 00:00 0 
7f0006000000-7f0006200000 r--p 00000000 fe:00 1234                       /models/a.gguf
7f0006200000-7f0006400000 rw-s 00000000 00:01 0                          /dev/zero (deleted)
7f0006400000-7f0006600000 ---p 00000000 00:00 0 
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
";
        assert_eq!(anonymous_mappings(maps), vec![0x7f00_0000_0000..0x7f00_0600_0000]);
    }

    #[test]
    fn added_ranges_are_what_the_load_mapped_or_grew() {
        let before = [0x1000..0x5000, 0x9000..0xa000];
        // A mapping that grew on both sides of an old one, a new one, an unchanged one.
        let after = [0x0..0x6000, 0x9000..0xa000, 0x20000..0x30000];
        assert_eq!(added_ranges(&before, &after), vec![0x0..0x1000, 0x5000..0x6000, 0x20000..0x30000]);
    }

    #[test]
    fn only_whole_huge_pages_are_advised() {
        let mib = 1 << 20;
        assert_eq!(huge_aligned(mib..7 * mib), Some(2 * mib..6 * mib));
        assert_eq!(huge_aligned(mib..3 * mib), None, "no whole 2 MiB page inside");
        assert_eq!(huge_aligned(2 * mib..4 * mib), Some(2 * mib..4 * mib));
    }

    #[test]
    fn the_thp_mode_in_brackets_decides() {
        assert!(thp_mode_allows_advice("always [madvise] never\n"));
        assert!(thp_mode_allows_advice("[always] madvise never\n"));
        assert!(!thp_mode_allows_advice("always madvise [never]\n"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_fresh_mapping_is_found_and_advised_without_changing_it() {
        if !available() {
            return;
        }
        let advice = Advice::before_load();
        let mut weights = vec![0u8; 16 * HUGE_PAGE];
        for (i, byte) in weights.iter_mut().enumerate() {
            *byte = (i % 251) as u8;
        }
        advice.apply();
        assert!(weights.iter().enumerate().all(|(i, &byte)| byte == (i % 251) as u8));
    }
}
