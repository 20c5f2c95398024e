use std::io::Write;

use berth::state::Store;

pub fn run(store: &Store, format: &str, quiet: bool) -> anyhow::Result<i32> {
    // One write for the whole table, not one per line.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let json = format == "json" && !quiet;
    if json {
        write!(out, "[")?;
    } else if !quiet {
        writeln!(out, "{:<12} {:<10} {:<10} {:<40} {:<30} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED")?;
    }
    let mut first = true;
    store.each_summary(|sum, status| -> anyhow::Result<()> {
        if quiet {
            writeln!(out, "{}", sum.id)?;
        } else if json {
            if !first {
                write!(out, ",")?;
            }
            serde_json::to_writer(&mut out, &sum.public(status))?;
        } else {
            let p = sum.public(status);
            writeln!(out, "{:<12} {:<10} {:<10} {:<40} {:<30} {}", p.id, p.pid, status, p.bundle, p.created, p.owner)?;
        }
        first = false;
        Ok(())
    })?;
    if json {
        writeln!(out, "]")?;
    }
    out.flush()?;
    Ok(0)
}
