//! Lines of `/proc/<pid>/mountinfo` (proc_pid_mountinfo(5)): what IMA policy conditions
//! (`fsname=`, `fs_subtype=`) and root-file-system scans need to know about a mount.
//! Parsing only; the caller reads the file.
//!
//! ```
//! let text = "36 35 98:0 /mnt1 /mnt/my\\040disk rw,noatime master:1 - fuse.sshfs host:/ rw\n";
//! let m = vigil_ima::mountinfo::parse(text).next().unwrap();
//! assert_eq!(m.mount_id, 36);
//! assert_eq!(m.mount_point, std::path::Path::new("/mnt/my disk"));
//! assert_eq!((m.fs_name(), m.fs_subtype()), ("fuse", Some("sshfs")));
//! ```

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry<'a> {
    /// Mount id (the one `statx(STATX_MNT_ID)` gives, not the unique kind).
    pub mount_id: u64,
    /// Parent mount's id.
    pub parent_id: u64,
    /// `st_dev` of the files on it.
    pub major: u32,
    pub minor: u32,
    /// Root of the mount within its file system.
    pub root: PathBuf,
    /// Where it is mounted, relative to the reading process's root.
    pub mount_point: PathBuf,
    /// File-system type as shown: `ext4`, or `type.subtype` (`fuse.sshfs`).
    pub fs_type: &'a str,
    /// Mount source (device, `server:/path`, or whatever the file system reports).
    pub source: String,
}

impl MountEntry<'_> {
    /// The file-system type name (`fuse` of `fuse.sshfs`), IMA's `fsname`.
    pub fn fs_name(&self) -> &str {
        self.fs_type
            .split_once('.')
            .map_or(self.fs_type, |(n, _)| n)
    }

    /// The subtype (`sshfs` of `fuse.sshfs`), IMA's `fs_subtype`.
    pub fn fs_subtype(&self) -> Option<&str> {
        self.fs_type.split_once('.').map(|(_, s)| s)
    }
}

/// The mounts in `text`, in order; lines that are not well-formed are skipped.
pub fn parse(text: &str) -> impl Iterator<Item = MountEntry<'_>> {
    text.lines().filter_map(parse_line)
}

fn parse_line(line: &str) -> Option<MountEntry<'_>> {
    let mut f = line.split(' ');
    let mount_id = f.next()?.parse().ok()?;
    let parent_id = f.next()?.parse().ok()?;
    let (major, minor) = f.next()?.split_once(':')?;
    let root = f.next()?;
    let mount_point = f.next()?;
    // Mount options, then optional fields up to the "-" separator.
    f.find(|x| *x == "-")?;
    let fs_type = f.next().filter(|t| !t.is_empty())?;
    let source = f.next()?;
    Some(MountEntry {
        mount_id,
        parent_id,
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        root: path(root),
        mount_point: path(mount_point),
        fs_type,
        source: String::from_utf8_lossy(&unescape(source)).into_owned(),
    })
}

fn path(field: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

/// Undo the kernel's octal escapes (`\040` for space, `\011` tab, `\012` newline,
/// `\134` backslash). A backslash not followed by three octal digits of a byte value is
/// kept as it is.
pub fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            && b[i + 1] <= b'3'
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn escapes() {
        assert_eq!(unescape(r"/a\040b\011c\134d\012"), b"/a b\tc\\d\n");
        assert_eq!(unescape(r"/plain"), b"/plain");
        // Truncated, non-octal or out-of-range escapes are kept as they are.
        assert_eq!(unescape(r"/x\04"), br"/x\04");
        assert_eq!(unescape(r"/x\9ab"), br"/x\9ab");
        assert_eq!(unescape("\\"), b"\\");
        assert_eq!(unescape(r"/\777"), br"/\777");
        // Bytes that are not UTF-8 survive into the path.
        assert_eq!(unescape(r"/\377"), b"/\xff");
    }

    #[test]
    fn lines() {
        let text = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid - proc proc rw
bad line
41 22 0:40 / /var/tmp/m rw,nosuid,nodev shared:7 master:2 - fuse vigil:/var/tmp/s rw,user_id=0
42 22 0:41 / /x rw -
";
        let all: Vec<_> = parse(text).collect();
        assert_eq!(all.len(), 3, "{all:#?}");
        assert_eq!(all[0].mount_point, Path::new("/"));
        assert_eq!((all[0].major, all[0].minor), (8, 1));
        assert_eq!((all[0].fs_name(), all[0].fs_subtype()), ("ext4", None));
        assert_eq!(all[0].source, "/dev/sda1");
        assert_eq!(all[1].parent_id, 22);
        assert_eq!(all[2].mount_id, 41);
        assert_eq!(all[2].fs_type, "fuse");
        assert_eq!(all[2].source, "vigil:/var/tmp/s");
    }

    #[test]
    fn this_process() {
        let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let all: Vec<_> = parse(&text).collect();
        assert_eq!(all.len(), text.lines().count(), "every real line parses");
        assert!(all.iter().any(|m| m.mount_point == Path::new("/")));
    }
}
