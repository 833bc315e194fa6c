//! ringlab's own machine code on 2 MiB pages.
//!
//! The interpreter's handlers and the run loops around them are spread over
//! some 3 MiB of code, and a guest's loop jumps among dozens of them, each
//! on its own 4 KiB page: more pages than the instruction TLB holds. How
//! much that costs depends on where the kernel happened to put the file's
//! pages: on the project's AMD Zen 5 host, the interpreter ran the suite's
//! sort at 215 M instructions/s from a binary just written by the linker
//! and at 365 M/s from the same bytes read back after the page cache was
//! dropped (physically contiguous pages, which the CPU's TLB can coalesce).
//! So at start, as HHVM and other large interpreters do, the text segment
//! is copied onto anonymous transparent huge pages and the copy moved over
//! the original mapping: the same bytes at the same addresses, a handful of
//! TLB entries, whatever the page cache holds.
//!
//! The binary is linked with its segments 2 MiB aligned (`build.rs`), so
//! that the text starts on a huge page boundary. Anything unexpected (no
//! THP, another layout, a failed call) leaves the text as it is: this is
//! an optimisation, never a condition for running. `RINGLAB_SMALL_PAGES=1`
//! skips it (a profiler such as perf names functions only in file-backed
//! code).

/// 2 MiB.
const HUGE: usize = 2 << 20;

/// What `remap` did, for `ringlab bench` to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Text {
    /// The text (`bytes` of it) is on huge pages.
    Huge { bytes: usize },
    /// Left on the file's pages, and why.
    Left(String),
}

static DONE: std::sync::OnceLock<Text> = std::sync::OnceLock::new();

/// What `remap` did (`Left` if it has not run).
pub fn status() -> Text {
    DONE.get()
        .cloned()
        .unwrap_or_else(|| Text::Left("not tried".into()))
}

/// Moves the executable's text onto huge pages. Must run first thing in
/// `main`, while no other thread runs (nothing else may execute or read
/// the text while its mapping is replaced; the replacement holds the same
/// bytes, so the code that makes the call goes on in the copy).
pub fn remap() -> Text {
    let t = if std::env::var_os("RINGLAB_SMALL_PAGES").is_some() {
        Text::Left("RINGLAB_SMALL_PAGES is set".into())
    } else {
        match try_remap() {
            Ok(bytes) => Text::Huge { bytes },
            Err(why) => Text::Left(why),
        }
    };
    let _ = DONE.set(t.clone());
    t
}

/// A mapping of /proc/self/maps: start, end, permissions, path.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    path: String,
}

fn parse_maps(maps: &str) -> Vec<Mapping> {
    maps.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            // (A file's path is the rest of the line from its first '/',
            // spaces and all.)
            let path = l.find('/').map_or("", |i| &l[i..]).to_string();
            let (a, b) = range.split_once('-')?;
            Some(Mapping {
                start: usize::from_str_radix(a, 16).ok()?,
                end: usize::from_str_radix(b, 16).ok()?,
                perms: perms.to_string(),
                path,
            })
        })
        .collect()
}

/// The range to move: the executable's one executable mapping, from its
/// 2 MiB-aligned start to the next 2 MiB boundary past its end if nothing
/// else is mapped up to there, else to the last boundary within it.
fn text_range(maps: &[Mapping], exe: &str) -> Result<(usize, usize, usize), String> {
    let mut text = maps.iter().filter(|m| m.path == exe && m.perms == "r-xp");
    let t = text.next().ok_or("no executable mapping of the binary")?;
    if text.next().is_some() {
        return Err("more than one executable mapping of the binary".into());
    }
    if t.start % HUGE != 0 {
        return Err(format!(
            "the text starts at {:#x}, not on a 2 MiB boundary",
            t.start
        ));
    }
    let up = (t.end + HUGE - 1) & !(HUGE - 1);
    let clear = maps
        .iter()
        .all(|m| m.end <= t.end || m.start >= up || m.start < t.start);
    let end = if clear { up } else { t.end & !(HUGE - 1) };
    if end <= t.start {
        return Err("the text is smaller than a huge page".into());
    }
    Ok((t.start, end, t.end.min(end) - t.start))
}

#[cfg(target_os = "linux")]
fn try_remap() -> Result<usize, String> {
    // (With THP off an anonymous copy would only lose the profilers'
    // symbols.)
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .map_err(|e| format!("transparent huge pages: {e}"))?;
    if thp.contains("[never]") {
        return Err("transparent huge pages are off".into());
    }
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| e.to_string())?;
    let exe = exe.to_str().ok_or("a binary path that is not UTF-8")?;
    let (start, end, used) = text_range(&parse_maps(&maps), exe)?;
    let len = end - start;
    // SAFETY: a fresh private anonymous mapping (no address asked for),
    // large enough to hold a 2 MiB-aligned region of `len` bytes.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len + HUGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    let raw = raw as usize;
    let at = (raw + HUGE - 1) & !(HUGE - 1);
    // SAFETY: `at..at + len` lies within the mapping just made, which
    // nothing else uses; `start..start + used` is the binary's own text,
    // mapped readable (r-xp) for the life of the process.
    let moved = unsafe {
        let hint = libc::madvise(at as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        std::ptr::copy_nonoverlapping(start as *const u8, at as *mut u8, used);
        hint == 0
            && libc::mprotect(
                at as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_EXEC,
            ) == 0
            && libc::mremap(
                at as *mut libc::c_void,
                len,
                len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                start as *mut libc::c_void,
            ) as usize
                == start
    };
    let err = std::io::Error::last_os_error();
    // The parts of the scratch mapping outside the aligned region (and all
    // of it if the move failed; then the text is as it was).
    // SAFETY: ranges of the scratch mapping only, which nothing points
    // into (the moved region is no longer part of it).
    unsafe {
        if moved {
            libc::munmap(raw as *mut libc::c_void, at - raw);
            libc::munmap((at + len) as *mut libc::c_void, raw + HUGE - at);
        } else {
            libc::munmap(raw as *mut libc::c_void, len + HUGE);
        }
    }
    if !moved {
        return Err(format!("madvise, mprotect or mremap: {err}"));
    }
    // What the kernel gave: huge pages where it had them free.
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let huge = huge_bytes(&smaps, start);
    if huge == 0 {
        return Err("moved, but the kernel gave no huge page".into());
    }
    Ok(huge)
}

/// The AnonHugePages of the mapping that starts at `start` in `smaps`.
fn huge_bytes(smaps: &str, start: usize) -> usize {
    let head = format!("{start:x}-");
    smaps
        .lines()
        .skip_while(|l| !l.starts_with(&head))
        .skip(1)
        // (Its attribute lines, "Name: value", up to the next mapping.)
        .take_while(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|t| t.ends_with(':'))
        })
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb << 10)
}

#[cfg(not(target_os = "linux"))]
fn try_remap() -> Result<usize, String> {
    Err("not Linux".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55bd44e00000-55bd45161000 r--p 00000000 fe:00 5310128 /x/ringlab
55bd45200000-55bd4551f000 r-xp 00400000 fe:00 5310128 /x/ringlab
55bd45600000-55bd45800000 r--p 00800000 fe:00 5310128 /x/ringlab
7f00000000-7f00001000 r-xp 00000000 fe:00 1 /usr/lib/libc.so.6
7f00001000-7f00002000 rw-p 00000000 00:00 0
7f00002000-7f00003000 r-xp 00000000 fe:00 2 /home/a b/ringlab (deleted)
";

    #[test]
    fn paths_are_whole_and_anonymous_mappings_have_none() {
        let m = parse_maps(MAPS);
        assert_eq!(m[4].path, "");
        assert_eq!(m[5].path, "/home/a b/ringlab (deleted)");
        assert_eq!(m[5].start, 0x7f00002000);
    }

    #[test]
    fn the_text_is_taken_to_the_next_boundary_when_nothing_is_mapped_there() {
        let m = parse_maps(MAPS);
        assert_eq!(m[1].perms, "r-xp");
        assert_eq!(
            text_range(&m, "/x/ringlab"),
            Ok((0x55bd45200000, 0x55bd45600000, 0x31f000))
        );
    }

    #[test]
    fn a_mapping_before_the_boundary_keeps_the_tail_on_small_pages() {
        let maps = MAPS.replace("55bd45600000-55bd45800000", "55bd45520000-55bd45800000");
        assert_eq!(
            text_range(&parse_maps(&maps), "/x/ringlab"),
            Ok((0x55bd45200000, 0x55bd45400000, 0x200000))
        );
    }

    #[test]
    fn huge_bytes_are_read_from_the_mappings_own_lines() {
        let smaps = "\
55bd45200000-55bd45600000 r-xp 00000000 00:00 0
Size:               4096 kB
AnonHugePages:      4096 kB
7f00000000-7f00001000 r-xp 00000000 fe:00 1 /usr/lib/libc.so.6
AnonHugePages:         0 kB
7f00001000-7f00002000 r--p 00000000 fe:00 1 /usr/lib/libc.so.6
Size:                  4 kB
7f00002000-7f00003000 rw-p 00000000 fe:00 1 /usr/lib/libc.so.6
AnonHugePages:      2048 kB
";
        assert_eq!(huge_bytes(smaps, 0x55bd45200000), 4 << 20);
        assert_eq!(huge_bytes(smaps, 0x7f00001000), 0, "not the next mapping's");
        assert_eq!(huge_bytes(smaps, 0x7f00000000), 0);
        assert_eq!(huge_bytes(smaps, 0x1000), 0);
    }

    #[test]
    fn an_unaligned_text_is_left_alone() {
        let maps = MAPS.replace("55bd45200000-55bd4551f000", "55bd450d6000-55bd453f5000");
        let r = text_range(&parse_maps(&maps), "/x/ringlab");
        assert!(r.unwrap_err().contains("not on a 2 MiB boundary"));
    }
}
