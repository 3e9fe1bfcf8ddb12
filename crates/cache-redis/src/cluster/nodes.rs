//! Reading a cluster's topology from `CLUSTER NODES`: each primary's slot ranges and how many
//! healthy replicas it has. (`CLUSTER SLOTS` lists a replica only once it reports a replication
//! offset, so a fresh cluster's replicas are missing from it.)

/// A slot range and the primary serving it.
pub(super) struct SlotRange {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) host: String,
    pub(super) port: u16,
    /// Replicas of that primary not flagged `fail` or `fail?`.
    pub(super) replicas: usize,
}

/// The slot ranges of a `CLUSTER NODES` reply: one line per node, `id host:port@bus[,hostname]
/// flags master-id ping pong epoch link slot…`, where a primary's slots are `N` or `N-M` (and
/// `[N->-id]` / `[N-<-id]` mark migrations, which move no ownership). `None` for a line that
/// does not parse or a primary without a usable address.
pub(super) fn parse_nodes(reply: &str) -> Option<Vec<SlotRange>> {
    struct Line<'a> {
        id: &'a str,
        address: &'a str,
        flags: &'a str,
        master: &'a str,
        slots: Vec<&'a str>,
    }
    let mut lines = Vec::new();
    for line in reply.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return None;
        }
        lines.push(Line {
            id: fields[0],
            address: fields[1],
            flags: fields[2],
            master: fields[3],
            slots: fields[8..].to_vec(),
        });
    }
    let healthy = |flags: &str| !flags.split(',').any(|f| f == "fail" || f == "fail?");
    let mut ranges = Vec::new();
    for primary in lines
        .iter()
        .filter(|l| l.flags.split(',').any(|f| f == "master"))
    {
        if primary.slots.is_empty() {
            continue;
        }
        let endpoint = primary.address.split([',', '@']).next()?;
        let (host, port) = endpoint.rsplit_once(':')?;
        if host.is_empty() {
            return None;
        }
        let port: u16 = port.parse().ok()?;
        let replicas = lines
            .iter()
            .filter(|l| {
                l.master == primary.id
                    && l.flags.split(',').any(|f| f == "slave")
                    && healthy(l.flags)
            })
            .count();
        for slot in primary.slots.iter().filter(|s| !s.starts_with('[')) {
            let (start, end) = slot.split_once('-').unwrap_or((slot, slot));
            ranges.push(SlotRange {
                start: start.parse().ok()?,
                end: end.parse().ok()?,
                host: host.to_string(),
                port,
                replicas,
            });
        }
    }
    Some(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_their_ranges_and_healthy_replicas() {
        let reply = "\
4d 127.0.0.1:31004@41004 slave 0d 0 1 3 connected
05 127.0.0.1:31001@41001 myself,master - 0 0 1 connected 0-5460
a4 127.0.0.1:31005@41005 slave,fail 05 0 1 1 connected
77 127.0.0.1:31002@41002,host-b master - 0 1 2 connected 5461-10921 10922 [10922->-0d]
0d 127.0.0.1:31003@41003 master,fail? - 0 1 3 connected 10923-16383
";
        let ranges = parse_nodes(reply).unwrap();
        let got: Vec<(usize, usize, u16, usize)> = ranges
            .iter()
            .map(|r| (r.start, r.end, r.port, r.replicas))
            .collect();
        assert_eq!(
            got,
            [
                (0, 5460, 31001, 0),
                (5461, 10921, 31002, 0),
                (10922, 10922, 31002, 0),
                (10923, 16383, 31003, 1)
            ]
        );
        assert!(parse_nodes("garbage").is_none());
        assert!(parse_nodes("05 :31001@41001 master - 0 0 1 connected 0-5460").is_none());
    }
}
