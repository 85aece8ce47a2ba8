//! Where a path given on the command line leads, and how apifetch writes there without
//! following a link planted for it or turning a device into a file.
//!
//! apifetch often runs as root: a path that names a device, a FIFO or a standard stream
//! must be written in place (replacing `/dev/full` by a file would break the machine), a
//! regular file is replaced atomically, and the files it keeps beside the output are never
//! reached through a symlink someone else put there.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What a path given for writing leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A regular file (or nothing yet), replaced atomically: the path at the end of any
    /// symlinks, so the link is kept and its target replaced.
    File(PathBuf),
    /// A device, a FIFO, a socket or one of this process's standard streams: written in
    /// place, appending, since renaming over it would replace the thing itself.
    Stream(PathBuf),
}

impl Place {
    /// Sorts `path` by the type of what is there now, never by how the path is spelled:
    /// a regular file under `/dev/shm` is a file, a FIFO in a home directory a stream.
    pub fn of(path: PathBuf) -> Self {
        match fs::metadata(&path) {
            Ok(meta) if !meta.is_file() && !meta.is_dir() => Place::Stream(path),
            Ok(meta) if is_standard_stream(&meta) => Place::Stream(path),
            _ => Place::File(follow_links(path)),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Place::File(path) | Place::Stream(path) => path,
        }
    }

    /// Writes the whole of `write`'s output there: in place for a stream, else through a
    /// temporary file renamed over the path (see [`replace`]).
    pub fn write(&self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        match self {
            Place::Stream(path) => {
                let mut file = OpenOptions::new().append(true).open(path)?;
                write(&mut file)?;
                file.flush()
            }
            Place::File(path) => replace(path, |file| write(file)).map(drop),
        }
    }

    /// Whether this is the same file as `other` names, however each is spelled.
    pub fn is(&self, other: &Path) -> bool {
        let place = comparable(self.path());
        place == comparable(other)
            || matches!(
                (identity(&place), identity(other)),
                (Some(a), Some(b)) if a == b
            )
    }
}

/// A path as an absolute one whose directory has no symlinks or `.` left in it, so two
/// spellings of one file compare equal even before the file exists.
fn comparable(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match (fs::canonicalize(dir), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// The device and inode of an existing file, not following a final symlink.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

/// Whether `meta` is the file this process already has open as its standard input,
/// output or error: `/dev/stdout` redirected with `>> all.csv` must be appended to, and
/// must not be replaced under the shell that holds it.
fn is_standard_stream(meta: &fs::Metadata) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fds = [
        io::stdin().as_fd().try_clone_to_owned(),
        io::stdout().as_fd().try_clone_to_owned(),
        io::stderr().as_fd().try_clone_to_owned(),
    ];
    fds.into_iter()
        .filter_map(|fd| File::from(fd.ok()?).metadata().ok())
        .any(|stream| (stream.dev(), stream.ino()) == (meta.dev(), meta.ino()))
}

/// Where a chain of symlinks ends, even when its last target does not exist yet (a first
/// run into a link made ahead of time must create the target, not replace the link).
fn follow_links(mut path: PathBuf) -> PathBuf {
    for _ in 0..40 {
        match fs::read_link(&path) {
            Ok(target) => {
                let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
                path = base.join(target);
            }
            Err(_) => break,
        }
    }
    path
}

/// Opens one of the files apifetch keeps beside the output (the partial file, the
/// checkpoint) with `options`, never through a symlink, and only if it is a regular file
/// of the user running apifetch: anyone who can write to the output's directory could
/// otherwise point it at a file of root's, to be truncated and filled with API data.
pub fn open_own(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let refuse = |why: &str| {
        io::Error::other(format!(
            "{} {why}; apifetch will not use it: remove it",
            path.display()
        ))
    };
    let file = match options.custom_flags(libc::O_NOFOLLOW).open(path) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refuse("is a symbolic link"));
        }
        opened => opened?,
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refuse("is not a regular file"));
    }
    if meta.uid() != effective_uid() {
        return Err(refuse("belongs to another user"));
    }
    Ok(file)
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

/// `path` with `suffix` added to its name: the files a run keeps beside its output.
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A new temporary file in `path`'s directory, where [`replace`] renames it over `path`.
/// tempfile creates files only their owner can read; an output file should get the same
/// mode as any file the user creates (the umask applies), or keep exactly the mode of the
/// file it replaces.
fn temporary_beside(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".apifetch-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Fails now if [`replace`] could not write `path` later: the directory is missing or
/// not writable. A run checks the files it writes after its output (the incremental
/// state, the summary) before it starts, so that it never replaces the output and then
/// fails to record that it did.
pub fn check_writable(path: &Path) -> io::Result<()> {
    if let Place::Stream(_) = Place::of(path.to_path_buf()) {
        return Ok(());
    }
    temporary_beside(path).map(drop)
}

/// Writes `path` through a temporary file beside it that is synced and renamed over it, so
/// a failure at any point leaves the old file as it was and no temporary file behind.
/// Returns the new file, open for writing, and what `write` returned.
pub fn replace<T>(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<T>,
) -> io::Result<(File, T)> {
    let mut tmp = temporary_beside(path)?;
    if let Ok(old) = fs::metadata(path) {
        tmp.as_file().set_permissions(old.permissions())?;
    }
    let written = write(tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    let file = tmp.persist(path).map_err(|e| e.error)?;
    Ok((file, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_sorted_by_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.csv");
        assert_eq!(Place::of(file.clone()), Place::File(file.clone()));
        std::fs::write(&file, "x").unwrap();
        assert_eq!(Place::of(file.clone()), Place::File(file.clone()));
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(Place::of(link), Place::File(file));
        let null = PathBuf::from("/dev/null");
        assert_eq!(Place::of(null.clone()), Place::Stream(null));
    }

    #[test]
    fn one_file_spelled_two_ways_is_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.csv");
        let place = Place::File(file.clone());
        assert!(place.is(&dir.path().join(".").join("a.csv")));
        assert!(!place.is(&dir.path().join("b.csv")));
        std::fs::write(&file, "x").unwrap();
        let other = dir.path().join("hard.csv");
        std::fs::hard_link(&file, &other).unwrap();
        assert!(place.is(&other));
    }
}
