//! block_devices: one row per entry of /sys/class/block (disks, partitions, loop, device-mapper, zram), the
//! devices osquery enumerates through libudev's "block" subsystem. Where each column comes from:
//! - `name`: `/dev/NAME`; `parent`: for a partition (it has a `partition` file), `/dev/` and the disk it sits
//!   in (the sysfs directory above it); empty otherwise, as osquery leaves it.
//! - `vendor`, `model`, `serial`: the udev database's `ID_VENDOR_ENC`, `ID_MODEL_ENC` (udev's `\xHH` escapes
//!   undone, trimmed: the names as the device gives them, where `ID_VENDOR`/`ID_MODEL` replace spaces with
//!   `_`), `ID_SERIAL_SHORT`, else sysfs's
//!   `device/vendor`, `device/model`, `device/serial` of the device (of the disk, for a partition), as lsblk
//!   reads them; NULL when neither has it (loop devices, virtual disks without a serial).
//! - `size`: sysfs `size`, in 512-byte sectors (the kernel's unit, whatever the logical block size);
//!   `block_size`: `queue/logical_block_size` (the disk's, for a partition).
//! - `uuid`, `type`, `label`: the filesystem's, from the udev database (`/run/udev/data/bMAJ:MIN`: `ID_FS_UUID`,
//!   `ID_FS_TYPE`, `ID_FS_LABEL`), which udev fills by probing with blkid. NULL when udev has not recorded them
//!   (no filesystem, or no udev: containers): herd-agent does not probe raw devices itself.
//!
//! lsblk (fleetd's: `lsblk -n -O --json`, flattened) is in flattened_command.rs.

use super::procfs::read_trimmed;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The udev database's properties (`E:KEY=value` lines) of the block device `MAJ:MIN`.
fn udev_properties(dev: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(format!("/run/udev/data/b{dev}")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("E:")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Undoes udev's `\xHH` escapes (`ID_MODEL_ENC`).
fn unescape_udev(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 2..i + 4).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], bytes.get(i + 1), hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'\\', Some(b'x'), Some(value)) => {
                out.push(value);
                i += 4;
            }
            (byte, ..) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct BlockDevices;

/// The rows for the devices in `class_block` (/sys/class/block in production).
pub(crate) fn block_devices(class_block: &Path) -> Vec<Row> {
    let Ok(entries) = std::fs::read_dir(class_block) else { return Vec::new() };
    let mut rows = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = std::fs::canonicalize(entry.path()).unwrap_or_else(|_| entry.path());
        let partition = dir.join("partition").exists();
        // A partition's disk is the sysfs directory it sits in; its device and queue are the disk's.
        let disk_dir = if partition { dir.parent().map(Path::to_path_buf) } else { Some(dir.clone()) };
        let disk_dir = disk_dir.unwrap_or_else(|| dir.clone());
        let parent = if partition {
            disk_dir.file_name().map(|n| format!("/dev/{}", n.to_string_lossy())).unwrap_or_default()
        } else {
            String::new()
        };
        let udev = read_trimmed(dir.join("dev")).map(|d| udev_properties(&d)).unwrap_or_default();
        let prop = |key: &str| udev.get(key).filter(|v| !v.is_empty()).cloned();
        let encoded = |key: &str| prop(key).map(|v| unescape_udev(&v).trim().to_string()).filter(|v| !v.is_empty());
        let sys = |file: &str| read_trimmed(disk_dir.join("device").join(file));
        let number = |path: std::path::PathBuf| read_trimmed(path).and_then(|v| v.parse::<i64>().ok());
        rows.push(Row::from([
            ("name", Value::text(format!("/dev/{name}"))),
            ("parent", Value::text(parent)),
            ("vendor", Value::opt_text(encoded("ID_VENDOR_ENC").or_else(|| sys("vendor")))),
            ("model", Value::opt_text(encoded("ID_MODEL_ENC").or_else(|| sys("model")))),
            ("serial", Value::opt_text(prop("ID_SERIAL_SHORT").or_else(|| sys("serial")))),
            ("size", Value::opt_int(number(dir.join("size")))),
            ("block_size", Value::opt_int(number(disk_dir.join("queue/logical_block_size")))),
            ("uuid", Value::opt_text(prop("ID_FS_UUID"))),
            ("type", Value::opt_text(prop("ID_FS_TYPE"))),
            ("label", Value::opt_text(prop("ID_FS_LABEL"))),
        ]));
    }
    rows
}

impl Table for BlockDevices {
    fn name(&self) -> &'static str {
        "block_devices"
    }
    fn description(&self) -> &'static str {
        "Block (buffered access) device file nodes: disks, ramdisks, and DMG containers."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name").index(),
            Column::text("parent"),
            Column::text("vendor"),
            Column::text("model"),
            Column::text("serial"),
            Column::bigint("size"),
            Column::int("block_size"),
            Column::text("uuid"),
            Column::text("type"),
            Column::text("label"),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let names = constraints.texts("name");
        let mut rows = block_devices(Path::new("/sys/class/block"));
        if constraints.has("name") {
            rows.retain(|r| matches!(&r["name"], Value::Text(n) if names.contains(n)));
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_escapes_are_undone() {
        assert_eq!(unescape_udev(r"Samsung\x20SSD\x20860\x20\x20"), "Samsung SSD 860  ");
        assert_eq!(unescape_udev(r"plain\x2"), r"plain\x2");
    }

    #[test]
    fn partitions_name_their_disk_and_share_its_queue() {
        let root = tempfile::tempdir().unwrap();
        let devices = root.path().join("devices/sda");
        std::fs::create_dir_all(devices.join("sda1")).unwrap();
        std::fs::create_dir_all(devices.join("queue")).unwrap();
        std::fs::create_dir_all(devices.join("device")).unwrap();
        std::fs::write(devices.join("size"), "2048\n").unwrap();
        std::fs::write(devices.join("queue/logical_block_size"), "4096\n").unwrap();
        std::fs::write(devices.join("device/model"), "QEMU HARDDISK   \n").unwrap();
        std::fs::write(devices.join("sda1/partition"), "1\n").unwrap();
        std::fs::write(devices.join("sda1/size"), "1024\n").unwrap();
        let class = root.path().join("class");
        std::fs::create_dir(&class).unwrap();
        std::os::unix::fs::symlink(&devices, class.join("sda")).unwrap();
        std::os::unix::fs::symlink(devices.join("sda1"), class.join("sda1")).unwrap();
        let mut rows = block_devices(&class);
        rows.sort_by_key(|r| r["name"].to_text());
        let get = |i: usize, c: &str| rows[i][c].clone();
        assert_eq!((get(0, "name"), get(0, "parent")), (Value::text("/dev/sda"), Value::text("")));
        assert_eq!((get(1, "name"), get(1, "parent")), (Value::text("/dev/sda1"), Value::text("/dev/sda")));
        assert_eq!((get(0, "size"), get(1, "size")), (Value::Int(2048), Value::Int(1024)));
        assert_eq!((get(0, "block_size"), get(1, "block_size")), (Value::Int(4096), Value::Int(4096)));
        assert_eq!(get(1, "model"), Value::text("QEMU HARDDISK"));
        assert_eq!((get(0, "serial"), get(0, "uuid")), (Value::Null, Value::Null));
    }
}
