//! The `run` and `validate` commands, as library functions the binary and tests share.

use crate::run::CellOptions;
use crate::run::pool::{self, Job};
use crate::scenario::{self, Availability, Cell, model::Fabric};
use reports::{Report, ScenarioReport};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Every expectation held.
pub const EXIT_PASS: u8 = 0;
/// Some expectation failed.
pub const EXIT_FAIL: u8 = 1;
/// Invalid input; nothing was started.
pub const EXIT_INVALID: u8 = 2;
/// The environment cannot run it (I/O errors, missing privileges).
pub const EXIT_ENVIRONMENT: u8 = 3;

/// What this build can run on `fabric`. Everything else in the scenario format parses, and
/// is then refused with "not available yet" (exit 2) rather than silently skipped.
pub fn availability(fabric: Fabric) -> Availability {
    // Everything built so far runs on both fabrics, except real programs (`run` steps),
    // which need the kernel fabric's namespaces.
    let built = Availability {
        stun: true,
        sip_proxy: true,
        media_relay: true,
        dispatcher: true,
        service_steps: true,
        turn: true,
        turn_tls: true,
        http_proxy: true,
        firewalls: true,
        probe_steps: true,
        punch_steps: true,
        tcp_punch: true,
        link_steps: true,
        nat_steps: true,
        sip_alg: true,
        probe_lifetime: true,
        ..Availability::default()
    };
    match fabric {
        Fabric::Virtual => Availability {
            virtual_fabric: true,
            ..built
        },
        Fabric::Kernel => Availability {
            kernel_fabric: true,
            run_steps: true,
            ..built
        },
    }
}

/// Problems that keep `cell` from running on `fabric` with this build.
pub fn cell_problems(cell: &Cell, file: &Path, fabric: Fabric) -> Vec<scenario::Error> {
    let mut spec = cell.spec.clone();
    spec.fabric = fabric;
    scenario::check_available(&spec, file, &availability(fabric))
}

/// Options of `pinhole run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Overrides every scenario's `fabric:`.
    pub fabric: Option<Fabric>,
    /// Report folder, if any.
    pub report: Option<PathBuf>,
    /// Cells run at once.
    pub jobs: usize,
    /// Only shard `i` of `n` (1-based).
    pub shard: Option<(usize, usize)>,
    /// Print report.json to stdout.
    pub json: bool,
    /// Only failures and the summary.
    pub quiet: bool,
    /// Write pcap files into `DIR/CELL/ATTACHMENT.pcap`.
    pub pcap: Option<PathBuf>,
    /// Most records in each cell's event log (`None`: the default,
    /// [`reports::events::DEFAULT_LIMIT`]).
    pub events_limit: Option<usize>,
}

/// `, N with zero checks` when cells ended without a check (they fail), else nothing.
pub fn unchecked_text(n: u32) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {n} with zero checks")
    }
}

/// The scenario files named by `paths`: files as given, folders searched recursively for
/// `*.yaml` / `*.yml`, sorted so that runs are reproducible.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let before = out.len();
            walk(p, &mut out).map_err(|e| format!("{}: {e}", p.display()))?;
            if out.len() == before {
                return Err(format!(
                    "{}: no *.yaml scenario files in this folder",
                    p.display()
                ));
            }
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    Ok(out)
}

/// `pinhole validate`: returns the exit code.
pub fn validate(paths: &[PathBuf]) -> u8 {
    let files = match collect_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("pinhole: {e}");
            return EXIT_INVALID;
        }
    };
    let mut bad = false;
    for f in &files {
        match scenario::load(f).and_then(|s| s.cells().map(|c| (s, c))) {
            Ok((s, cells)) => {
                let problems: Vec<_> = cells
                    .iter()
                    .flat_map(|c| cell_problems(c, f, c.spec.fabric))
                    .collect();
                if problems.is_empty() {
                    println!(
                        "ok    {} ({}, {} cell{})",
                        f.display(),
                        s.spec.name,
                        cells.len(),
                        if cells.len() == 1 { "" } else { "s" }
                    );
                } else {
                    bad = true;
                    print_errors(&dedup(problems));
                }
            }
            Err(errs) => {
                bad = true;
                print_errors(&errs.0);
            }
        }
    }
    if bad { EXIT_INVALID } else { EXIT_PASS }
}

fn dedup(mut v: Vec<scenario::Error>) -> Vec<scenario::Error> {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|e| seen.insert(e.to_string()));
    v
}

fn print_errors(errs: &[scenario::Error]) {
    for e in errs {
        eprintln!("{e}");
    }
}

/// Whether `program` can be executed: a path that exists, or a name found on `PATH`.
fn program_exists(program: &str) -> bool {
    if program == "pinhole" {
        // Runs this binary (see `run::kernel::with_own_binary`).
        return true;
    }
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// One message per `run:` step (of a kernel cell) whose program is not installed.
fn missing_programs(jobs: &[Job], files: &[PathBuf]) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for j in jobs.iter().filter(|j| j.cell.spec.fabric == Fabric::Kernel) {
        for step in &j.cell.spec.steps {
            if let scenario::model::StepKind::Run { cmd, .. } = &step.kind
                && let Some(program) = cmd.first()
                && !program_exists(program)
            {
                out.insert(format!(
                    "{}:{}:{}: `{program}` is not installed or not on PATH\n  help: install it \
                     (`cargo xtask deps` installs the programs the shipped scenarios use)",
                    files[j.scenario].display(),
                    step.pos.line,
                    step.pos.col
                ));
            }
        }
    }
    out.into_iter().collect()
}

/// `pinhole run`: returns the exit code.
pub fn run(paths: &[PathBuf], opts: &RunOptions) -> anyhow::Result<u8> {
    let files = match collect_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("pinhole: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    // Parse and check everything before anything starts.
    let mut scenarios = Vec::new();
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    for (si, f) in files.iter().enumerate() {
        match scenario::load(f).and_then(|s| s.cells().map(|c| (s, c))) {
            Ok((s, mut cells)) => {
                for c in &mut cells {
                    let fabric = opts.fabric.unwrap_or(c.spec.fabric);
                    errors.extend(cell_problems(c, f, fabric));
                    c.spec.fabric = fabric;
                }
                scenarios.push(ScenarioReport {
                    file: f.display().to_string(),
                    name: s.spec.name.clone(),
                    cells: Vec::new(),
                });
                for (ci, cell) in cells.into_iter().enumerate() {
                    jobs.push(Job {
                        scenario: si,
                        index: ci,
                        cell,
                    });
                }
            }
            Err(errs) => errors.extend(errs.0),
        }
    }
    if !errors.is_empty() {
        print_errors(&dedup(errors));
        eprintln!("pinhole: nothing was run (exit {EXIT_INVALID})");
        return Ok(EXIT_INVALID);
    }
    if let Some((i, n)) = opts.shard {
        let mut k = 0;
        jobs.retain(|_| {
            k += 1;
            (k - 1) % n == i - 1
        });
    }
    // A program a `run:` step needs but the machine lacks: the environment cannot run it.
    let missing = missing_programs(&jobs, &files);
    if !missing.is_empty() {
        for m in &missing {
            eprintln!("{m}");
        }
        eprintln!("pinhole: nothing was run (exit {EXIT_ENVIRONMENT})");
        return Ok(EXIT_ENVIRONMENT);
    }
    let total = jobs.len();
    // The kernel fabric lives in a sandbox of namespaces that must be entered before any
    // thread exists; the process continues inside it (the outer one only waits).
    if jobs.iter().any(|j| j.cell.spec.fabric == Fabric::Kernel)
        && let Err(e) = emulator::fabric::kernel::sys::enter_sandbox()
    {
        {
            eprintln!("pinhole: {e}");
            return Ok(if e.is_unsupported() {
                EXIT_ENVIRONMENT
            } else {
                EXIT_FAIL
            });
        }
    }
    if !opts.quiet && !opts.json {
        eprintln!(
            "pinhole: running {total} cell{} from {} file{} on {} worker{}",
            if total == 1 { "" } else { "s" },
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            opts.jobs.min(total.max(1)),
            if opts.jobs.min(total.max(1)) == 1 {
                ""
            } else {
                "s"
            }
        );
    }
    // Run cells in parallel; print each as it finishes; assemble the report in order.
    let cell_opts = CellOptions {
        pcap_dir: opts.pcap.clone(),
        events_limit: opts.events_limit,
    };
    let stdout = std::io::stdout();
    let mut printed = Ok(());
    let done = pool::run_cells(jobs, opts.jobs, &cell_opts, |si, _, cell| {
        if !opts.json && printed.is_ok() {
            let mut out = stdout.lock();
            printed = print_cell(&mut out, &files[si], cell, opts.quiet);
        }
    });
    printed?;
    for (si, _, cell) in done {
        scenarios[si].cells.push(cell);
    }
    let mut report = Report::new(env!("CARGO_PKG_VERSION"));
    report.scenarios = scenarios;
    report.summarize();
    if let Some(dir) = &opts.report {
        report
            .write_to_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot write the report to {}: {e}", dir.display()))?;
    }
    let s = &report.summary;
    if opts.json {
        print!("{}", report.to_json());
    } else {
        println!(
            "\n{} cell{}: {} passed, {} failed{} ({} checks: {} held, {} failed){}",
            s.cells,
            if s.cells == 1 { "" } else { "s" },
            s.cells_passed,
            s.cells_failed,
            unchecked_text(s.cells_without_checks),
            s.checks_passed + s.checks_failed,
            s.checks_passed,
            s.checks_failed,
            opts.report
                .as_ref()
                .map(|d| format!("; report: {}", d.join("report.json").display()))
                .unwrap_or_default()
        );
    }
    Ok(if s.cells_failed == 0 {
        EXIT_PASS
    } else {
        EXIT_FAIL
    })
}

fn print_cell(
    out: &mut impl Write,
    file: &Path,
    cell: &reports::CellReport,
    quiet: bool,
) -> std::io::Result<()> {
    if quiet && cell.passed {
        return Ok(());
    }
    writeln!(
        out,
        "{} {}  ({}, seed {}, {} ms scenario time)",
        if cell.passed { "PASS" } else { "FAIL" },
        cell.name,
        file.display(),
        cell.seed,
        cell.ended_ms
    )?;
    if let Some(e) = &cell.error {
        writeln!(out, "     error: {e}")?;
    }
    for c in &cell.checks {
        if quiet && c.passed {
            continue;
        }
        let measured = c.measured_text.clone().unwrap_or_else(|| "—".into());
        writeln!(
            out,
            "     {} {}.{}: expected {}, measured {}{}",
            if c.passed { "ok  " } else { "FAIL" },
            c.step,
            c.measure,
            c.expected,
            measured,
            c.message
                .as_ref()
                .filter(|_| !c.passed)
                .map(|m| format!(" — {m}"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}
