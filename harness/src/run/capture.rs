//! `--pcap DIR`: one capture file per interface (host, NAT or firewall side) of a cell,
//! fed by either fabric's capture tap.

use emulator::fabric::engine::Captured;
use emulator::pcap::PcapWriter;
use emulator::topology::{Attachment, Topology};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

/// The capture files of one cell, created on first use.
pub struct PcapSink {
    dir: PathBuf,
    writers: BTreeMap<Attachment, PcapWriter<BufWriter<File>>>,
    error: Option<String>,
}

impl PcapSink {
    /// Files go into `dir` (created when the first packet arrives).
    pub fn new(dir: PathBuf) -> Self {
        PcapSink {
            dir,
            writers: BTreeMap::new(),
            error: None,
        }
    }

    /// Append one captured packet; `epoch` is t = 0 of the file's timestamps. The first
    /// write error is kept and reported by [`PcapSink::finish`]; later packets are skipped.
    pub fn record(&mut self, topo: &Topology, epoch: Instant, c: &Captured) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.write(topo, epoch, c) {
            self.error = Some(format!(
                "cannot write pcap files to {}: {e}",
                self.dir.display()
            ));
        }
    }

    fn write(&mut self, topo: &Topology, epoch: Instant, c: &Captured) -> std::io::Result<()> {
        let w = match self.writers.entry(c.at) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                std::fs::create_dir_all(&self.dir)?;
                let name = topo.attachment_name(c.at);
                let f = File::create(self.dir.join(format!("{name}.pcap")))?;
                v.insert(PcapWriter::new(BufWriter::new(f))?)
            }
        };
        w.write_packet(c.time.saturating_duration_since(epoch), &c.packet)
    }

    /// Flush every file; the first error, if any.
    pub fn finish(self) -> Result<(), String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        for (_, w) in self.writers {
            w.finish()
                .map_err(|e| format!("cannot write pcap files to {}: {e}", self.dir.display()))?;
        }
        Ok(())
    }
}

/// A folder name for a cell: its name with anything but letters, digits and `-.=,`
/// replaced by `_`.
pub fn cell_dir_name(cell: &str) -> String {
    cell.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-.=,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
