//! `zlh sample-game`: a stand-in game server with a Minecraft-like console.
//!
//! It prints a `Done (...)!` ready line, answers commands on stdin, and can misbehave on
//! command in every way the agent must recognise: crash, exit 0, print a mod stack trace, a
//! missing class or an out-of-memory error, allocate until the kernel kills it, ignore `stop`
//! or SIGTERM, and flood its output as fast as it can.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, clap::Args)]
pub(crate) struct SampleGameArgs {
    /// Milliseconds between start and the ready line.
    #[arg(long, default_value_t = 300)]
    ready_delay_ms: u64,
    /// Ignore the `stop` command (to exercise the agent's SIGTERM step).
    #[arg(long)]
    ignore_stop: bool,
    /// Ignore SIGTERM too (to exercise the agent's SIGKILL step).
    #[arg(long)]
    ignore_sigterm: bool,
    /// Crash this many milliseconds after the ready line.
    #[arg(long)]
    crash_after_ms: Option<u64>,
    /// Exit code of a scheduled crash.
    #[arg(long, default_value_t = 1)]
    exit_code: i32,
    /// Print a numbered `Tick` line this often (milliseconds), as a busy server logs.
    #[arg(long)]
    tick_ms: Option<u64>,
    /// Keep a world: this many region files in `world/region/`, rewritten with a new
    /// generation number every `--save-interval-ms` while saving is on (like a Minecraft
    /// world), so a backup taken while saving runs would mix generations.
    #[arg(long, default_value_t = 0)]
    world_files: usize,
    /// Bytes per region file.
    #[arg(long, default_value_t = 64 * 1024)]
    world_file_size: usize,
    /// How often the world is saved while saving is on.
    #[arg(long, default_value_t = 100)]
    save_interval_ms: u64,
    /// Where `flood` writes its measured output rate (JSON), for benchmarks.
    #[arg(long)]
    stats_file: Option<std::path::PathBuf>,
    /// Listen for players on this TCP port (all interfaces), as a game does; a port that is
    /// taken ends the game before it is ready, as it ends Minecraft.
    #[arg(long)]
    port: Option<u16>,
    /// Bind the port this long after printing the ready line, as some real games do (and
    /// then fail on a busy port after saying they are up).
    #[arg(long)]
    bind_after_ready_ms: Option<u64>,
}

fn log(thread: &str, level: &str, message: &str) {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) % 86_400;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "[{h:02}:{m:02}:{s:02}] [{thread}/{level}]: {message}");
    let _ = out.flush();
}

fn info(message: &str) {
    log("Server thread", "INFO", message);
}

/// Listens for players on `port`, as a game does; a port that is taken ends the game.
fn listen(port: u16) {
    info(&format!("Starting Minecraft server on *:{port}"));
    let listener = match std::net::TcpListener::bind(("0.0.0.0", port)) {
        Ok(listener) => listener,
        Err(e) => {
            log("Server thread", "WARN", "**** FAILED TO BIND TO PORT!");
            log("Server thread", "WARN", &format!("The exception was: {e}"));
            std::process::exit(1);
        }
    };
    // Players connect and are turned away: the port only has to be the game's.
    std::thread::spawn(move || for _ in listener.incoming() {});
}

fn print_raw(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

pub(crate) fn run(args: SampleGameArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    watch_sigterm(args.ignore_sigterm)?;
    log("main", "INFO", "Starting minecraft server version 1.21 (ZeroLagHub sample game)");
    let bind_late = args.bind_after_ready_ms;
    if let Some(port) = args.port.filter(|_| bind_late.is_none()) {
        listen(port);
    }
    info("Preparing level \"world\"");
    std::thread::sleep(Duration::from_millis(args.ready_delay_ms));
    info(&format!("Done ({:.3}s)! For help, type \"help\"", started.elapsed().as_secs_f64()));
    if let (Some(port), Some(delay)) = (args.port, bind_late) {
        std::thread::sleep(Duration::from_millis(delay));
        listen(port);
    }
    let world = World::start(&args);
    if let Some(period) = args.tick_ms {
        std::thread::spawn(move || {
            for tick in 0u64.. {
                std::thread::sleep(Duration::from_millis(period));
                info(&format!("Tick {tick}"));
            }
        });
    }
    if let Some(after) = args.crash_after_ms {
        let code = args.exit_code;
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(after));
            log("Server thread", "ERROR", "Scheduled crash: the sample game gives up");
            std::process::exit(code);
        });
    }
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let (command, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        match command {
            "" => {}
            "help" => info(
                "Commands: help, say <text>, list, size, stop, crash, exit0, die, modcrash, missingclass, oom, allocate [MiB], flood [bytes]",
            ),
            "say" => info(&format!("[Server] {rest}")),
            "list" => info("There are 0 of a max of 20 players online:"),
            "save-off" => {
                world.set_saving(false);
                info("Automatic saving is now disabled");
            }
            "save-on" => {
                world.set_saving(true);
                info("Automatic saving is now enabled");
            }
            "save-all" => {
                world.save();
                info("Saved the game");
            }
            "stop" if args.ignore_stop => info("Stop requested, but this sample game ignores it"),
            "stop" => {
                info("Stopping the server");
                info("Saving chunks for level 'ServerLevel[world]'/minecraft:overworld");
                std::process::exit(0);
            }
            "crash" => {
                log("Server thread", "ERROR", "Encountered an unexpected exception");
                print_raw(
                    "java.lang.IllegalStateException: sample crash\n\tat net.minecraft.server.MinecraftServer.runServer(MinecraftServer.java:700) ~[server-1.21.jar:?]\n",
                );
                std::process::exit(1);
            }
            "exit0" => {
                info("Leaving without being asked to");
                std::process::exit(0);
            }
            "die" => {
                info("Killing myself with SIGKILL");
                signal_hook::low_level::raise(signal_hook::consts::SIGKILL)?;
            }
            "modcrash" => {
                log("Server thread", "ERROR", "Encountered an unexpected exception");
                print_raw(concat!(
                    "net.minecraft.ReportedException: Ticking block entity\n",
                    "\tat net.minecraft.server.MinecraftServer.tickChildren(MinecraftServer.java:1012) ~[server-1.21.jar:?]\n",
                    "Caused by: java.lang.NullPointerException: Cannot invoke \"Object.toString()\" because \"value\" is null\n",
                    "\tat com.example.coolmod.BlockTicker.tick(BlockTicker.java:42) ~[mods/coolmod-1.2.0.jar:?]\n",
                    "-- Mod list --\n",
                    "Suspected Mods: Cool Mod (coolmod), Version: 1.2.0\n",
                ));
                std::process::exit(255);
            }
            "missingclass" => {
                print_raw(concat!(
                    "Exception in thread \"main\" java.lang.NoClassDefFoundError: net/fabricmc/api/ModInitializer\n",
                    "Caused by: java.lang.ClassNotFoundException: net.fabricmc.api.ModInitializer\n",
                ));
                std::process::exit(1);
            }
            "oom" => {
                print_raw(
                    "Exception in thread \"Server thread\" java.lang.OutOfMemoryError: Java heap space\n",
                );
                std::process::exit(3);
            }
            "size" => {
                // The terminal size as the game sees it (after a console resize).
                std::process::Command::new("stty").arg("size").status()?;
            }
            "allocate" => allocate(rest.parse().unwrap_or(4096)),
            "flood" => flood(rest.parse().ok(), args.stats_file.as_deref())?,
            _ => info("Unknown command. Type \"help\" for help."),
        }
    }
    Ok(())
}

/// Allocates and touches memory in 16 MiB steps, up to `max_mib`, then waits. Under a memory
/// limit the kernel's OOM killer ends it first.
fn allocate(max_mib: usize) {
    const STEP: usize = 16 << 20;
    let mut held: Vec<Vec<u8>> = Vec::new();
    while held.len() * 16 < max_mib {
        held.push(vec![0x5a; STEP]);
        info(&format!("Allocated {} MiB", held.len() * 16));
    }
    info("Allocation limit reached; holding on");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
        std::hint::black_box(&held);
    }
}

/// Writes numbered lines as fast as the terminal takes them: `bytes` of them, or forever.
fn flood(bytes: Option<u64>, stats_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut written = 0u64;
    let mut line_number = 0u64;
    while bytes.is_none_or(|limit| written < limit) {
        let line = format!("flood {line_number:012} the quick brown fox jumps over the lazy dog\n");
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
        line_number += 1;
    }
    out.flush()?;
    drop(out);
    let seconds = started.elapsed().as_secs_f64();
    info(&format!("Flood done: {written} bytes in {seconds:.3}s"));
    if let Some(path) = stats_file {
        std::fs::write(path, format!("{{\"bytes\":{written},\"seconds\":{seconds}}}\n"))?;
    }
    Ok(())
}

/// SIGTERM stops the game the way a JVM does (exit 143), or is ignored.
fn watch_sigterm(ignore: bool) -> anyhow::Result<()> {
    use signal_hook::consts::SIGTERM;
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM])?;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if ignore {
                info("SIGTERM received, but this sample game ignores it");
            } else {
                info("Stopping the server (SIGTERM)");
                std::process::exit(143);
            }
        }
    });
    Ok(())
}

/// A world on disk: region files that all carry the generation they were saved in.
#[derive(Clone)]
struct World {
    files: usize,
    size: usize,
    saving: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::Mutex<u64>>,
}

impl World {
    fn start(args: &SampleGameArgs) -> World {
        let world = World {
            files: args.world_files,
            size: args.world_file_size,
            saving: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
            generation: std::sync::Arc::new(std::sync::Mutex::new(0)),
        };
        if world.files > 0 {
            world.save();
            let (saver, interval) = (world.clone(), Duration::from_millis(args.save_interval_ms));
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(interval);
                    if saver.saving.load(std::sync::atomic::Ordering::SeqCst) {
                        saver.save();
                    }
                }
            });
        }
        world
    }

    fn set_saving(&self, on: bool) {
        // Taking the lock waits for a save in progress to finish.
        let _generation = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        self.saving.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Writes every region file, one after the other (not atomically: that is the point).
    fn save(&self) {
        let mut generation = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        *generation += 1;
        let _ = std::fs::create_dir_all("world/region");
        let _ = std::fs::write("world/level.dat", format!("generation={generation}\n"));
        for n in 0..self.files {
            let mut bytes = format!("generation={generation}\n").into_bytes();
            bytes.resize(self.size.max(bytes.len()), (*generation % 251) as u8);
            let _ = std::fs::write(format!("world/region/r.{n}.mca"), bytes);
        }
    }
}
