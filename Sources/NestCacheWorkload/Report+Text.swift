import NestCacheCore

extension ReportData {
    /// The text columns limit: the report is pasted into mailing-list replies.
    public static let textWidth = 72

    /// Plain text, no line wider than `textWidth`: a header, then one section per question of
    /// the review, each with its table, chart where it has one, and reading.
    public var text: String {
        var out: [String] = []
        let R = ReportReading.self
        out.append("nestcache report")
        out += Self.wrap("input: " + input.split(separator: ",", omittingEmptySubsequences: false).joined(separator: ", "), indent: "  ")
        out += Self.wrap(
            "\(vms) VM\(vms == 1 ? "" : "s"), \(l1VCPUs) L1 vCPU\(l1VCPUs == 1 ? "" : "s"), \(switches) switches, \(entries) nested entries, \(pagesPerContext) pages per context unless declared",
            indent: "  ")
        out += Self.wrap(
            "cost model (assumed): map \(R.ns(cost.mapNs)) ns, unmap \(R.ns(cost.unmapNs)) ns per page, lookup \(R.ns(cost.lookupNs)) ns",
            indent: "  ")
        if !figures.isEmpty {
            out += Self.wrap("reader: " + figures.map { "\($0.name) \($0.value)" }.joined(separator: ", "), indent: "  ")
        }

        // 1
        out.append("")
        out.append("1. Gain isolated from the switch to persistent mappings")
        out += TextTable.render(isolationRows).split(separator: "\n").map(String.init)
        out += Self.wrap("(pages: mapped + unmapped per 1k nested entries; ns/entry: the cost model's overhead)", indent: " ")
        out += Self.wrap("reading: " + readings.isolation.text, indent: "  ")

        // 2
        out.append("")
        out.append("2. Per-VM table vs per-vCPU LRU, with both optima")
        out.append("hit ratio vs K (K + 1 contexts per vCPU):")
        out += TextChart(
            xLabels: (0...max(0, kmax)).map(String.init), xName: "K",
            series: [
                .init(marker: "*", name: "per-vcpu-lru:K", values: lruHits.map(ratio)),
                .init(marker: "o", name: "OPT-vCPU", values: optVCPUHits.map(ratio)),
            ]
        ).render(width: Self.textWidth)
        out += TextTable.render(kRows, leftAligned: []).split(separator: "\n").map(String.init)
        out.append("")
        out.append("hit ratio vs R (R x M contexts for the VM):")
        out += TextChart(
            xLabels: ratios.map(String.init), xName: "R",
            series: [
                .init(marker: "*", name: "per-vm-table:R", values: tableHits.map(ratio)),
                .init(marker: "o", name: "OPT-VM", values: optVMHits.map(ratio)),
            ]
        ).render(width: Self.textWidth)
        out += TextTable.render(rRows, leftAligned: []).split(separator: "\n").map(String.init)
        out += Self.wrap("reading: " + readings.sharing.text, indent: "  ")

        // 3
        out.append("")
        out.append("3. Direct-map exposure as the L2:L1 ratio grows")
        out.append("peak mapped pages (exposure: per-vm-table:\(r)'s, of guest memory):")
        out += TextTable.render(exposureRows, leftAligned: []).split(separator: "\n").map(String.init)
        out += Self.wrap("reading: " + readings.exposure.text, indent: "  ")

        // 4
        out.append("")
        out.append("4. Break-even map+unmap cost")
        out += Self.wrap(
            "c = ns to map one page and unmap it later (split \(R.pct(BreakEven.mapShare(cost))) map, as the model); break-even: the c below which a policy saves under 1% of the baseline's overhead; saved: ns per entry at the model's c = \(R.ns(BreakEven.modelCost(cost))) ns",
            indent: " ")
        out += TextTable.render(breakEvenRows).split(separator: "\n").map(String.init)
        out += Self.wrap("reading: " + readings.breakEven.text, indent: "  ")
        return out.map { $0.trimmingTrailingSpaces }.joined(separator: "\n") + "\n"
    }

    /// Section 1's table.
    var isolationRows: [[String]] {
        let R = ReportReading.self
        var rows = [["policy", "hit ratio", "pages/1k entries", "ns/entry", "peak pages"]]
        for p in policies {
            rows.append([
                p.policy.description, p.hitRatio.map(R.pct) ?? "-", p.pagesPer1kEntries.map(R.n1) ?? "-",
                p.overheadNsPerEntry.map(R.n1) ?? "-", String(p.peakMappedPages),
            ])
        }
        return rows
    }

    /// Section 2's table by K.
    var kRows: [[String]] {
        let R = ReportReading.self
        var rows = [["K", "LRU hits", "LRU", "OPT-vCPU hits", "OPT-vCPU"]]
        for k in lruHits.indices {
            rows.append([String(k), String(lruHits[k]), ratio(lruHits[k]).map(R.pct) ?? "-",
                         String(optVCPUHits[k]), ratio(optVCPUHits[k]).map(R.pct) ?? "-"])
        }
        return rows
    }

    /// Section 2's table by R.
    var rRows: [[String]] {
        let R = ReportReading.self
        var rows = [["R", "table hits", "table", "OPT-VM hits", "OPT-VM"]]
        for (i, r) in ratios.enumerated() {
            rows.append([String(r), String(tableHits[i]), ratio(tableHits[i]).map(R.pct) ?? "-",
                         String(optVMHits[i]), ratio(optVMHits[i]).map(R.pct) ?? "-"])
        }
        return rows
    }

    /// Section 3's table: peak mapped pages per policy by ratio, and the table's exposure.
    var exposureRows: [[String]] {
        let pols = exposurePolicies
        var keys: [Int?] = []
        for row in exposure where !keys.contains(row.ratio) { keys.append(row.ratio) }
        let table = PolicySpec.perVMTable(contextsPerVCPU: r)
        var rows = [["L2:L1", "L2 vCPUs"] + pols.map(\.shortName) + ["exposure"]]
        for key in keys {
            let group = exposure.filter { $0.ratio == key }
            var line = [key.map { "\($0):1" } ?? "trace", group.first?.l2VCPUs.map(String.init) ?? "-"]
            for p in pols { line.append(group.first { $0.policy == p }.map { String($0.peakMappedPages) } ?? "-") }
            line.append(group.first { $0.policy == table }?.exposure.map(ReportReading.pct4) ?? "-")
            rows.append(line)
        }
        return rows
    }

    /// Section 4's table, two header rows.
    var breakEvenRows: [[String]] {
        let R = ReportReading.self
        var rows = [["policy", "saved", "break-even", "saved", "break-even"],
                    ["", "vs single", "vs single", "vs m-p-e", "vs m-p-e"]]
        func outcome(_ o: BreakEven.Outcome?) -> String {
            switch o {
            case nil: "-"
            case .never: "never"
            case .below(let c)?: R.ns(c)
            }
        }
        for b in breakEven {
            rows.append([b.policy.description, b.savingOverSingle.map(R.n1) ?? "-", outcome(b.overSingle),
                         b.savingOverMapPerEntry.map(R.n1) ?? "-", outcome(b.overMapPerEntry)])
        }
        return rows
    }

    /// The policies of section 3, in row order.
    var exposurePolicies: [PolicySpec] {
        var out: [PolicySpec] = []
        for row in exposure where !out.contains(row.policy) { out.append(row.policy) }
        return out
    }


    /// `text` in lines of at most `width` columns, broken at spaces (a word longer than a line
    /// is cut); lines after the first start with `indent`.
    public static func wrap(_ text: String, width: Int = textWidth, indent: String = "") -> [String] {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            var word = Substring(word)
            while true {
                let prefix = line.isEmpty ? (lines.isEmpty ? "" : indent) : line + " "
                if prefix.count + word.count <= width {
                    line = prefix + word
                    break
                }
                if !line.isEmpty {
                    lines.append(line)
                    line = ""
                    continue
                }
                // A word longer than a whole line: cut it.
                let room = max(1, width - prefix.count)
                lines.append(prefix + word.prefix(room))
                word = word.dropFirst(room)
                if word.isEmpty { break }
            }
        }
        if !line.isEmpty || lines.isEmpty { lines.append(line) }
        return lines
    }
}

extension String {
    var trimmingTrailingSpaces: String {
        var s = Substring(self)
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
