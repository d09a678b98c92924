//! The "grouping vs ground truth" column: the JSON an fdid command line prints, parsed, against the
//! workload's truth — the output a user gets, not a library survey beside it.

use std::collections::HashMap;

use serde::Deserialize;

#[derive(Deserialize)]
struct Report {
    fds: Vec<Fd>,
    summary: Summary,
}

#[derive(Deserialize)]
struct Fd {
    pid: u32,
    tid: u32,
    fd: u32,
    id: u64,
}

#[derive(Deserialize)]
struct Summary {
    source: String,
}

/// `ok (N fds)`, or what is wrong: JSON that does not parse, another collector than `source`, fds
/// out of the walk's order, fds of the truth missing, or fds grouped against it.
pub fn check(stdout: &[u8], truth: &HashMap<(u32, u32), String>, source: &str) -> String {
    let report: Report = match serde_json::from_slice(stdout) {
        Ok(report) => report,
        Err(error) => return format!("UNPARSABLE JSON: {error}"),
    };
    if report.summary.source != source {
        return format!("SOURCE {} (not {source})", report.summary.source);
    }
    if let Some(at) = out_of_walk_order(&report.fds) {
        return format!("OUT OF ORDER at fds[{at}]");
    }
    let mut id_of_label: HashMap<&str, u64> = HashMap::new();
    let mut label_of_id: HashMap<u64, &str> = HashMap::new();
    let (mut seen, mut wrong) = (0usize, 0usize);
    for fd in &report.fds {
        let Some(label) = truth.get(&(fd.pid, fd.fd)) else {
            continue;
        };
        seen += 1;
        let by_label = *id_of_label.entry(label).or_insert(fd.id);
        let by_id = *label_of_id.entry(fd.id).or_insert(label);
        wrong += usize::from(by_label != fd.id || by_id != label);
    }
    if seen < truth.len() {
        format!("MISSING {} fds", truth.len() - seen)
    } else if wrong > 0 {
        format!("WRONG {wrong} fds")
    } else {
        format!("ok ({seen} fds)")
    }
}

/// The first fd that breaks the walk's order — each fd table (pid, tid) one contiguous run of
/// ascending fds — if any.
fn out_of_walk_order(fds: &[Fd]) -> Option<usize> {
    let mut finished = std::collections::HashSet::new();
    for (i, pair) in fds.windows(2).enumerate() {
        let (a, b) = (&pair[0], &pair[1]);
        if (a.pid, a.tid) == (b.pid, b.tid) {
            if b.fd <= a.fd {
                return Some(i + 1);
            }
        } else if !finished.insert((a.pid, a.tid)) || finished.contains(&(b.pid, b.tid)) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(fds: &[(u32, u32, u64)]) -> Vec<u8> {
        let fds: Vec<String> = fds
            .iter()
            .map(|(pid, fd, id)| format!("{{\"pid\":{pid},\"tid\":{pid},\"fd\":{fd},\"id\":{id}}}"))
            .collect();
        format!(
            "{{\"fds\":[{}],\"summary\":{{\"source\":\"bpf\"}}}}",
            fds.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn swapped_halves_a_merge_a_split_and_a_gap_are_each_caught() {
        let truth: HashMap<(u32, u32), String> =
            [((1, 3), "a"), ((1, 4), "a"), ((1, 5), "b"), ((2, 3), "a")]
                .into_iter()
                .map(|(k, v)| (k, v.to_owned()))
                .collect();
        let good = [(1, 3, 7), (1, 4, 7), (1, 5, 8), (2, 3, 7)];
        assert_eq!(check(&report(&good), &truth, "bpf"), "ok (4 fds)");
        let swapped = [(2, 3, 7), (1, 5, 8), (1, 3, 7), (1, 4, 7)];
        assert!(check(&report(&swapped), &truth, "bpf").starts_with("OUT OF ORDER"));
        let merged = [(1, 3, 7), (1, 4, 7), (1, 5, 7), (2, 3, 7)];
        assert_eq!(check(&report(&merged), &truth, "bpf"), "WRONG 1 fds");
        let split = [(1, 3, 7), (1, 4, 9), (1, 5, 8), (2, 3, 7)];
        assert!(check(&report(&split), &truth, "bpf").starts_with("WRONG"));
        assert_eq!(check(&report(&good[..3]), &truth, "bpf"), "MISSING 1 fds");
        assert!(check(&report(&good), &truth, "procfs").starts_with("SOURCE bpf"));
        assert!(check(b"{\"fds\":[", &truth, "bpf").starts_with("UNPARSABLE"));
    }
}
