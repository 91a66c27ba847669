//! `.npz` archives: a zip with one `.npy` entry per array, as numpy's `savez` (stored) and
//! `savez_compressed` (deflated) write them; the array's key is the entry name without `.npy`.
//!
//! Reading checks each entry's header before its data: the size the header implies must be the
//! size the zip directory declares, so a lying file fails with a message instead of an
//! allocation. Every error names the file (and the entry).

use std::io::{Cursor, Read, Write};
use std::path::Path;

use cappa::checkpoint::write_atomic;
use cappa::{Error, Result};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::npy::{self, Descr};

/// One array: element type, shape, raw little-endian data.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Element type.
    pub descr: Descr,
    /// Shape.
    pub shape: Vec<usize>,
    /// `shape.product() * descr.size()` bytes.
    pub data: Vec<u8>,
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{}: {msg}", path.display()))
}

/// How much a deflated entry may inflate: to at most `MAX_INFLATION ×` its compressed size
/// plus [`FREE_INFLATION`] bytes. Float weights barely compress (1.1× is typical), so only a
/// crafted archive (a "zip bomb": a megabyte declaring a gigabyte) comes near; it is refused
/// from the sizes the archive declares, before anything is inflated.
pub const MAX_INFLATION: u64 = 100;
/// See [`MAX_INFLATION`]: room for tensors of zeros, which compress ~1000×.
pub const FREE_INFLATION: u64 = 256 << 20;

/// Every array of the archive at `path`, in archive order, keyed by entry name minus `.npy`.
pub fn read(path: &Path) -> Result<Vec<(String, Array)>> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(bad(path, "not a regular file"));
    }
    read_archive(std::io::BufReader::new(file), path)
}

/// [`read`] of an archive from any reader; `path` names it in messages.
pub fn read_archive<R: Read + std::io::Seek>(
    reader: R,
    path: &Path,
) -> Result<Vec<(String, Array)>> {
    let mut zip = ZipArchive::new(reader)
        .map_err(|e| bad(path, format_args!("not a zip archive (.npz): {e}")))?;
    let mut arrays: Vec<(String, Array)> = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| bad(path, format_args!("zip entry {i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| bad(path, format_args!("zip entry {i}: {e}")))?
            .into_owned();
        if entry.is_dir() {
            continue;
        }
        let at = |msg: String| bad(path, format_args!("entry `{name}`: {msg}"));
        let Some(key) = name.strip_suffix(".npy") else {
            return Err(at(
                "not a .npy array (an .npz holds only `<key>.npy` entries)".into(),
            ));
        };
        if arrays.iter().any(|(k, _)| k == key) {
            return Err(at("appears twice in the archive".into()));
        }
        let declared = entry.size();
        let compressed = entry.compressed_size();
        let budget = compressed
            .saturating_mul(MAX_INFLATION)
            .saturating_add(FREE_INFLATION);
        if declared > budget {
            return Err(at(format!(
                "declares {declared} bytes from {compressed} compressed ones, more than a real \
                 checkpoint inflates to ({MAX_INFLATION}× + {} MiB); nothing was inflated (if \
                 the file is genuine, save it uncompressed, with np.savez)",
                FREE_INFLATION >> 20
            )));
        }
        let (header, offset) = npy::read_header(&mut entry).map_err(at)?;
        let len = header.data_len().expect("checked by the parser");
        if (offset as u64).checked_add(len as u64) != Some(declared) {
            return Err(at(format!(
                "holds {} bytes of data but its header ({} {:?}) implies {len}",
                declared.saturating_sub(offset as u64),
                header.descr,
                header.shape
            )));
        }
        let mut data = Vec::new();
        (&mut entry)
            .take(len as u64)
            .read_to_end(&mut data)
            .map_err(|e| at(format!("cannot read the data: {e}")))?;
        if data.len() != len {
            return Err(at(format!("truncated: {} of {len} data bytes", data.len())));
        }
        // Reading on to the end of the entry is what makes the zip reader check its CRC.
        match entry.read(&mut [0u8; 1]) {
            Ok(0) => {}
            Ok(_) => return Err(at("more data than its header implies".into())),
            Err(e) => return Err(at(format!("corrupt data: {e}"))),
        }
        arrays.push((
            key.to_string(),
            Array {
                descr: header.descr,
                shape: header.shape,
                data,
            },
        ));
    }
    Ok(arrays)
}

/// Writes `arrays` to `path` (atomically), each as `<key>.npy`, stored as `np.savez` does or
/// deflated as `np.savez_compressed` does.
pub fn write<'a>(
    path: &Path,
    arrays: impl IntoIterator<Item = (&'a str, Descr, &'a [usize], &'a [u8])>,
    compress: bool,
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::Io(format!("{}: {e}", path.display()));
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (key, descr, shape, data) in arrays {
        let header = npy::header_bytes(descr, shape);
        let size = (header.len() + data.len()) as u64;
        let options = SimpleFileOptions::default()
            .compression_method(if compress {
                CompressionMethod::Deflated
            } else {
                CompressionMethod::Stored
            })
            .large_file(size >= u64::from(u32::MAX));
        zip.start_file(format!("{key}.npy"), options)
            .map_err(|e| err(&e))?;
        zip.write_all(&header).map_err(|e| err(&e))?;
        zip.write_all(data).map_err(|e| err(&e))?;
    }
    let bytes = zip.finish().map_err(|e| err(&e))?.into_inner();
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("cappa-npz-{}-{name}", std::process::id()))
    }

    #[test]
    fn write_then_read_stored_and_deflated() {
        let a: Vec<u8> = (0..24u8).collect();
        let b: Vec<u8> = vec![1, 2];
        for compress in [false, true] {
            let path = temp(&format!("rt-{compress}.npz"));
            write(
                &path,
                [
                    ("x/y", Descr::F32, &[2usize, 3][..], &a[..]),
                    ("s", Descr::BF16, &[][..], &b[..]),
                ],
                compress,
            )
            .unwrap();
            let got = read(&path).unwrap();
            std::fs::remove_file(&path).ok();
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].0, "x/y");
            assert_eq!(
                got[0].1,
                Array {
                    descr: Descr::F32,
                    shape: vec![2, 3],
                    data: a.clone()
                }
            );
            assert_eq!((got[1].1.descr, &got[1].1.data), (Descr::BF16, &b));
        }
    }

    #[test]
    fn malformed_archives_are_errors_naming_the_file() {
        let path = temp("bad.npz");
        std::fs::write(&path, b"this is not a zip").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.npz") && err.contains("not a zip"),
            "{err}"
        );

        // Header says 3 floats, the entry holds 2.
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        zip.start_file("w.npy", SimpleFileOptions::default())
            .unwrap();
        zip.write_all(&npy::header_bytes(Descr::F32, &[3])).unwrap();
        zip.write_all(&[0; 8]).unwrap();
        std::fs::write(&path, zip.finish().unwrap().into_inner()).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.npz: entry `w.npy`: holds 8 bytes of data but its header"),
            "{err}"
        );
        std::fs::remove_file(&path).ok();

        let err = read(&temp("missing.npz")).unwrap_err().to_string();
        assert!(err.contains("missing.npz"), "{err}");
    }

    #[test]
    fn a_zip_bomb_is_refused_before_it_inflates() {
        // 1 GiB of zeros declared by an archive of about a megabyte (issue 18: it used to
        // inflate to 2.1 GB before failing). Written in 1 MiB pieces, so the test itself never
        // holds the gigabyte.
        let path = temp("bomb.npz");
        let mut zip = ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(9))
            .large_file(true);
        zip.start_file("encoder/pos_embedding.npy", options)
            .unwrap();
        let n = (1usize << 30) / 4;
        zip.write_all(&npy::header_bytes(Descr::F32, &[1, n]))
            .unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            zip.write_all(&zeros).unwrap();
        }
        zip.finish().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 2 << 20, "{size} bytes");
        let err = read(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).ok();
        assert!(
            err.contains("bomb.npz: entry `encoder/pos_embedding.npy`: declares")
                && err.contains("nothing was inflated"),
            "{err}"
        );
    }

    #[test]
    fn corrupted_archives_never_panic() {
        let path = temp("good.npz");
        let data: Vec<u8> = (0..64u8).collect();
        for compress in [false, true] {
            write(
                &path,
                [
                    ("a", Descr::F32, &[4usize, 4][..], &data[..]),
                    ("b/c", Descr::F16, &[2usize, 16][..], &data[..]),
                ],
                compress,
            )
            .unwrap();
            let good = std::fs::read(&path).unwrap();
            let bad = temp(&format!("corrupt-{compress}.npz"));
            if !compress {
                // One flipped bit in the stored data: only the CRC can tell.
                let at = good.windows(16).position(|w| w == &data[..16]).unwrap();
                let mut b = good.clone();
                b[at + 5] ^= 1;
                std::fs::write(&bad, &b).unwrap();
                let err = read(&bad).unwrap_err().to_string();
                assert!(err.contains("entry `a.npy`: corrupt data"), "{err}");
            }
            let mut broken = 0;
            for i in (0..good.len()).step_by(3) {
                for (what, bytes) in [
                    ("truncated", good[..i].to_vec()),
                    ("flipped", {
                        let mut b = good.clone();
                        b[i] ^= 0xA5;
                        b
                    }),
                ] {
                    std::fs::write(&bad, &bytes).unwrap();
                    if let Err(e) = read(&bad) {
                        broken += 1;
                        let msg = e.to_string();
                        assert!(msg.contains("corrupt-"), "{what} at {i}: {msg}");
                        assert!(!msg.contains('\n'), "{what} at {i}: {msg}");
                    }
                }
            }
            // Every truncation is noticed, and every flipped byte of the data (by the CRC) or of
            // the structure; a flip in a field nobody reads (a timestamp, a version) may not be.
            assert!(
                broken > good.len() / 2,
                "{broken} of {} corruptions noticed",
                good.len()
            );
            std::fs::remove_file(&bad).ok();
        }
        std::fs::remove_file(&path).ok();
    }
}
