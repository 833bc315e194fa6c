//! `ringlab xv6`: MIT's teaching Unix in one word.
//!
//! It builds (or finds cached) `xv6.img` and `fs.img` with
//! `scripts/xv6-images.sh` from ringlab's source tree, then does what
//! `ringlab run --mem 512 --disk xv6.img --disk fs.img` does (or `ringlab
//! step` with `--step`), with every option of those commands passed on.
//! Nothing of xv6 is in ringlab: the script builds it from
//! `../shared/guests/xv6-public` or a clone of its upstream repository.

use crate::status::{self, Status};
use anyhow::Context;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The RAM xv6's `make qemu` gives QEMU (`-m 512`): its kernel uses
/// memory up to PHYSTOP (224 MiB).
pub const XV6_MEM_MIB: &str = "512";

/// xv6's shell prompt, what `--type-after` waits for by default.
pub const XV6_PROMPT: &str = "$ ";

#[derive(clap::Args, Debug)]
pub struct Xv6Args {
    /// Open the step UI (`ringlab step`) instead of running: `r` runs to
    /// the next ring change, the first ones are init's system calls.
    #[arg(long)]
    pub step: bool,
    /// Keep xv6's file system in FILE: made from the built fs.img the
    /// first time, then written by every run, so what one session creates
    /// is there in the next (as `make qemu` keeps fs.img). Without it each
    /// run starts from the built file system and drops its writes
    /// (--snapshot).
    #[arg(long, value_name = "FILE")]
    pub fs: Option<PathBuf>,
    /// Options of `ringlab run` (or of `ringlab step` with --step):
    /// --engine, --stats, --json, --trace, --vga, --timeout, ... With stdin
    /// not a terminal, --type-after '$ ' is the default: each line is typed
    /// at the shell's prompt and the run ends at the prompt after the last.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "RUN OPTIONS"
    )]
    pub options: Vec<OsString>,
}

/// Where `scripts/xv6-images.sh` is: in the source tree ringlab was built
/// from.
fn images_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/xv6-images.sh")
}

/// The two images, built or found by the script.
pub struct Images {
    pub xv6: PathBuf,
    pub fs: PathBuf,
}

/// Runs the image script (its progress goes to stderr) and takes the two
/// paths it prints.
pub fn images() -> anyhow::Result<Images> {
    let script = images_script();
    if !script.exists() {
        return Err(status::error(
            status::BAD_IMAGE,
            format!(
                "ringlab xv6 builds xv6 with scripts/xv6-images.sh from ringlab's source tree, \
                 which is not at {}; build xv6.img and fs.img and use \
                 `ringlab run --mem 512 --disk xv6.img --disk fs.img`",
                script.display()
            ),
        ));
    }
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))
        .status(status::BAD_IMAGE)?;
    if !out.status.success() {
        return Err(status::error(
            status::BAD_IMAGE,
            format!(
                "{} could not build xv6 ({}; what it said is above)",
                script.display(),
                out.status
            ),
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let paths: Vec<&str> = stdout.lines().collect();
    match paths[..] {
        [xv6, fs] => Ok(Images {
            xv6: xv6.into(),
            fs: fs.into(),
        }),
        _ => Err(status::error(
            status::BAD_IMAGE,
            format!(
                "{} printed {stdout:?}, not the two image paths",
                script.display()
            ),
        )),
    }
}

/// The machine `ringlab xv6` boots, as `ringlab compare` and `ringlab
/// lesson xv6` take it: the two disks (opened read-only by the
/// comparison, which keeps the guest's writes in memory), the RAM.
pub fn guest_args(img: &Images) -> crate::run::GuestArgs {
    crate::run::GuestArgs {
        lesson: None,
        mem: XV6_MEM_MIB.parse().expect("a number"),
        disk: vec![img.xv6.clone(), img.fs.clone()],
        snapshot: true,
        ..crate::run::GuestArgs::lesson("xv6")
    }
}

/// The command line `ringlab xv6 ...` stands for: `ringlab run` (or
/// `step`) with the disks, the RAM and the options given.
pub fn command_line(args: &Xv6Args, img: &Images, stdin_is_terminal: bool) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["ringlab".into()];
    v.push(if args.step { "step" } else { "run" }.into());
    v.extend(["--mem", XV6_MEM_MIB].map(OsString::from));
    v.push("--disk".into());
    v.push(img.xv6.clone().into());
    v.push("--disk".into());
    match &args.fs {
        Some(fs) => v.push(fs.clone().into()),
        None => {
            v.push(img.fs.clone().into());
            v.push("--snapshot".into());
        }
    }
    let given = |name: &str| args.options.iter().any(|o| o.to_str() == Some(name));
    if !args.step && !stdin_is_terminal && !given("--type-after") && !given("--no-input") {
        v.extend(["--type-after", XV6_PROMPT].map(OsString::from));
    }
    v.extend(args.options.iter().cloned());
    v
}

/// Makes `fs` a copy of the built file system if it does not exist yet.
fn prepare_fs(fs: &Path, built: &Path) -> anyhow::Result<()> {
    if fs.exists() {
        return Ok(());
    }
    std::fs::copy(built, fs)
        .with_context(|| format!("cannot make {} from {}", fs.display(), built.display()))
        .status(status::BAD_IMAGE)?;
    eprintln!(
        "ringlab: xv6's file system is {} (a copy of the built fs.img); it keeps what the \
         guest writes",
        fs.display()
    );
    Ok(())
}

/// Takes `--step` and `--fs FILE` out of the options passed on, where
/// they came after an option of `run` (clap hands everything from the
/// first unknown option on to `options`).
fn own_options(args: &Xv6Args) -> anyhow::Result<Xv6Args> {
    let mut out = Xv6Args {
        step: args.step,
        fs: args.fs.clone(),
        options: vec![],
    };
    let mut it = args.options.iter();
    while let Some(o) = it.next() {
        match o.to_str() {
            Some("--step") => out.step = true,
            Some("--fs") => match it.next() {
                Some(f) => out.fs = Some(f.into()),
                None => {
                    return Err(status::error(
                        status::USAGE,
                        "--fs needs a FILE: the file system to keep",
                    ))
                }
            },
            _ => match o.to_str().and_then(|s| s.strip_prefix("--fs=")) {
                Some(f) => out.fs = Some(f.into()),
                None => out.options.push(o.clone()),
            },
        }
    }
    Ok(out)
}

pub fn xv6(args: &Xv6Args) -> anyhow::Result<u8> {
    let args = &own_options(args)?;
    let mut img = images()?;
    let kernel = img.xv6.parent().map(|d| d.join("build/kernel"));
    // With a kept file system the run writes its disks, and would lock
    // the cached boot disk for itself (another `ringlab xv6` could not
    // read it meanwhile): it boots from a private copy, which xv6 never
    // writes.
    let mut boot_copy = None;
    if let Some(fs) = &args.fs {
        prepare_fs(fs, &img.fs)?;
        let copy = std::env::temp_dir().join(format!("ringlab-xv6-{}.img", std::process::id()));
        std::fs::copy(&img.xv6, &copy)
            .with_context(|| format!("cannot copy {} to {}", img.xv6.display(), copy.display()))
            .status(status::BAD_IMAGE)?;
        img.xv6 = copy.clone();
        boot_copy = Some(copy);
    }
    // Under gdb (`ringlab xv6 --gdb`), as `make qemu-gdb` does: where the
    // kernel with its symbols is.
    if args
        .options
        .iter()
        .any(|o| o.to_str().is_some_and(|o| o.starts_with("--gdb")))
    {
        if let Some(k) = kernel.filter(|k| k.exists()) {
            eprintln!(
                "ringlab: xv6's kernel with its symbols, for gdb: {} (then the `target remote` below)",
                k.display()
            );
        }
    }
    let line = command_line(args, &img, std::io::stdin().is_terminal());
    let r = crate::cli::main_with(line);
    if let Some(copy) = boot_copy {
        // A temporary file left behind harms nothing; the run's own result
        // is what the user must see.
        let _ = std::fs::remove_file(copy);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(step: bool, fs: Option<&str>, options: &[&str]) -> Xv6Args {
        Xv6Args {
            step,
            fs: fs.map(PathBuf::from),
            options: options.iter().map(OsString::from).collect(),
        }
    }

    fn line(a: &Xv6Args, terminal: bool) -> String {
        let img = Images {
            xv6: "X/xv6.img".into(),
            fs: "X/fs.img".into(),
        };
        let v: Vec<String> = command_line(a, &img, terminal)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        v.join(" ")
    }

    #[test]
    fn the_comparison_boots_the_disks_with_the_ram_and_never_writes_them() {
        let img = Images {
            xv6: "X/xv6.img".into(),
            fs: "X/fs.img".into(),
        };
        let g = guest_args(&img);
        assert_eq!(g.mem, 512);
        assert_eq!(g.disk, [PathBuf::from("X/xv6.img"), "X/fs.img".into()]);
        assert!(g.snapshot && g.lesson.is_none() && g.image.is_none());
    }

    #[test]
    fn its_own_options_are_found_after_those_of_run() {
        let a = own_options(&args(
            false,
            None,
            &["--engine", "bt", "--step", "--fs", "f.img", "--stats"],
        ))
        .unwrap();
        assert!(a.step);
        assert_eq!(a.fs, Some(PathBuf::from("f.img")));
        assert_eq!(a.options, ["--engine", "bt", "--stats"].map(OsString::from));
        assert!(own_options(&args(false, None, &["--fs"])).is_err());
    }

    #[test]
    fn stands_for_run_with_the_disks_the_ram_and_the_options() {
        assert_eq!(
            line(&args(false, None, &["--engine", "bt", "--stats"]), true),
            "ringlab run --mem 512 --disk X/xv6.img --disk X/fs.img --snapshot --engine bt --stats"
        );
        assert_eq!(
            line(&args(false, Some("my.img"), &[]), false),
            "ringlab run --mem 512 --disk X/xv6.img --disk my.img --type-after $ ",
            "a kept file system is written; a pipe is typed at the prompt"
        );
        assert_eq!(
            line(&args(false, None, &["--type-after", "# "]), false),
            "ringlab run --mem 512 --disk X/xv6.img --disk X/fs.img --snapshot --type-after # ",
        );
        assert_eq!(
            line(&args(true, None, &["--engine", "kvm"]), true),
            "ringlab step --mem 512 --disk X/xv6.img --disk X/fs.img --snapshot --engine kvm"
        );
    }
}
