//! The read-only `.vigil/` directory at the root of every mount: the measurement list,
//! PCR values and policy as securityfs would show them, the violations counter, and
//! the mount's own status.

/// Name of the control directory in the mount's root. A backing entry of that name is
/// hidden and cannot be created, renamed or removed through the mount.
pub const DIR_NAME: &str = ".vigil";
/// Node id of the control directory.
pub const DIR_INO: u64 = 2;

/// The files of `.vigil/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlFile {
    /// The measurement list in the kernel's binary format.
    BinaryMeasurements,
    /// The measurement list in the kernel's ASCII format.
    AsciiMeasurements,
    /// Number of violations recorded (ToMToU, open_writers), as securityfs shows it.
    Violations,
    /// The emulated PCR values the measurement list extends.
    Pcrs,
    /// The policy in force, one rule per line as the kernel shows it.
    Policy,
    /// The mount's configuration and counters, one `key: value` per line.
    Status,
}

impl ControlFile {
    pub const ALL: [ControlFile; 6] = [
        ControlFile::AsciiMeasurements,
        ControlFile::BinaryMeasurements,
        ControlFile::Pcrs,
        ControlFile::Violations,
        ControlFile::Policy,
        ControlFile::Status,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ControlFile::BinaryMeasurements => "binary_runtime_measurements",
            ControlFile::AsciiMeasurements => "ascii_runtime_measurements",
            ControlFile::Violations => "violations",
            ControlFile::Pcrs => "pcrs",
            ControlFile::Policy => "policy",
            ControlFile::Status => "status",
        }
    }

    /// Permission bits (owner and group root), as securityfs gives them: the
    /// measurement lists and the policy name every file measured and what is watched,
    /// so only root reads them; the counters, PCR values and status are for everyone.
    pub fn perm(self) -> u16 {
        match self {
            ControlFile::BinaryMeasurements
            | ControlFile::AsciiMeasurements
            | ControlFile::Policy => 0o440,
            ControlFile::Violations | ControlFile::Pcrs | ControlFile::Status => 0o444,
        }
    }

    pub fn ino(self) -> u64 {
        DIR_INO + 1 + Self::ALL.iter().position(|&f| f == self).unwrap_or(0) as u64
    }

    pub fn from_ino(ino: u64) -> Option<ControlFile> {
        Self::ALL.iter().copied().find(|f| f.ino() == ino)
    }

    pub fn from_name(name: &[u8]) -> Option<ControlFile> {
        Self::ALL
            .iter()
            .copied()
            .find(|f| f.name().as_bytes() == name)
    }
}

/// Is `ino` the control directory or one of its files?
pub fn is_control(ino: u64) -> bool {
    ino == DIR_INO || ControlFile::from_ino(ino).is_some()
}
