import Foundation
import NestCacheWorkload
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A directory laid out like a tracefs buffer: the files `record` reads and writes.
func fakeTracefs(events: [String] = TracefsTarget.eventNames.filter { $0 != "kvm_nested_vmrun" }, tracingOn: String = "0\n") throws -> String {
    let root = (try temporaryFile("", name: "unused") as NSString).deletingLastPathComponent + "/tracefs"
    let fm = FileManager.default
    for e in events + ["kvm_mmio"] {
        try fm.createDirectory(atPath: "\(root)/events/kvm/\(e)", withIntermediateDirectories: true)
        try Data("0\n".utf8).write(to: URL(fileURLWithPath: "\(root)/events/kvm/\(e)/enable"))
    }
    try fm.createDirectory(atPath: "\(root)/options", withIntermediateDirectories: true)
    try fm.createDirectory(atPath: "\(root)/instances", withIntermediateDirectories: true)
    try Data("0\n".utf8).write(to: URL(fileURLWithPath: "\(root)/options/record-tgid"))
    try Data(tracingOn.utf8).write(to: URL(fileURLWithPath: "\(root)/tracing_on"))
    #expect(mkfifo("\(root)/trace_pipe", 0o600) == 0)
    return root
}

func fileText(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "<missing>" }

/// Finding a tracefs and changing its settings, in a fake tree (the real one is tested end to end
/// by Tests/oracle/test_record.py).
@Suite struct TracefsTests {
    func kind(_ body: () throws(TraceError) -> Void) -> (TraceError.Kind, String)? {
        do throws(TraceError) { try body() } catch { return (error.kind, error.description) }
        return nil
    }

    @Test func findChecksEveryThingItNeedsAndSaysWhatToDo() throws {
        let root = try fakeTracefs()
        let t = try TracefsTarget.find(tracefs: root + "/", buffer: .topLevel)
        #expect(t.root == root && t.directory == root)
        #expect(t.events == ["kvm_nested_vmenter", "kvm_exit", "kvm_entry", "kvm_nested_vmexit"])
        #expect(try TracefsTarget.find(tracefs: root, buffer: .instance("a")).directory == root + "/instances/a")

        let empty = (root as NSString).deletingLastPathComponent + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let noMount = kind { () throws(TraceError) in _ = try TracefsTarget.find(tracefs: empty, buffer: .topLevel) }
        #expect(noMount?.0 == .unavailable && noMount?.1.contains("mount -t tracefs nodev \(empty)") == true)

        for bad in ["", ".", "..", "a/b"] {
            #expect(kind { () throws(TraceError) in _ = try TracefsTarget.find(tracefs: root, buffer: .instance(bad)) }?.0 == .usage)
        }
        try FileManager.default.removeItem(atPath: root + "/instances")
        let noInstances = kind { () throws(TraceError) in _ = try TracefsTarget.find(tracefs: root, buffer: .instance("a")) }
        #expect(noInstances?.0 == .unavailable && noInstances?.1.contains("--no-instance") == true)
        try FileManager.default.removeItem(atPath: root + "/options/record-tgid")
        #expect(kind { () throws(TraceError) in _ = try TracefsTarget.find(tracefs: root, buffer: .topLevel) }?.1.contains("record-tgid") == true)
        try FileManager.default.removeItem(atPath: root + "/events/kvm/kvm_nested_vmenter")
        #expect(kind { () throws(TraceError) in _ = try TracefsTarget.find(tracefs: root, buffer: .topLevel) }?.1.contains("kvm_nested_vmrun") == true)
        try FileManager.default.removeItem(atPath: root + "/events/kvm")
        let noKVM = kind { () throws(TraceError) in _ = try TracefsTarget.find(tracefs: root, buffer: .topLevel) }
        #expect(noKVM?.0 == .unavailable && noKVM?.1.contains("modprobe kvm_intel") == true)
    }

    @Test func olderKernelsNestedVMRunIsEnough() throws {
        let root = try fakeTracefs(events: ["kvm_nested_vmrun", "kvm_exit"])
        #expect(try TracefsTarget.find(tracefs: root, buffer: .topLevel).events == ["kvm_nested_vmrun", "kvm_exit"])
    }

    /// Only what differs is written; `restore` puts the originals back, `0*` as `0`, once.
    @Test func sessionTurnsOnWhatIsOffAndRestoresItOnce() throws {
        let root = try fakeTracefs(tracingOn: "1\n")
        try Data("0*\n".utf8).write(to: URL(fileURLWithPath: root + "/events/kvm/kvm_exit/enable"))
        try Data("1\n".utf8).write(to: URL(fileURLWithPath: root + "/events/kvm/kvm_entry/enable"))
        let session = try TracefsSession(try TracefsTarget.find(tracefs: root, buffer: .topLevel))
        #expect(session.changes.map { ($0.path.replacingOccurrences(of: root + "/", with: ""), $0.original) }.elementsEqual([
            ("options/record-tgid", "0"), ("events/kvm/kvm_nested_vmenter/enable", "0"),
            ("events/kvm/kvm_exit/enable", "0*"), ("events/kvm/kvm_nested_vmexit/enable", "0"),
        ], by: ==))
        for f in ["options/record-tgid", "events/kvm/kvm_exit/enable", "tracing_on"] { #expect(fileText("\(root)/\(f)") == "1\n") }
        #expect(fileText(root + "/events/kvm/kvm_mmio/enable") == "0\n")
        #expect(session.restore() == [])
        #expect(fileText(root + "/events/kvm/kvm_exit/enable") == "0\n")
        #expect(fileText(root + "/events/kvm/kvm_entry/enable") == "1\n")
        #expect(fileText(root + "/options/record-tgid") == "0\n")
        #expect(fileText(root + "/tracing_on") == "1\n")
        try Data("1\n".utf8).write(to: URL(fileURLWithPath: root + "/options/record-tgid"))
        #expect(session.restore() == [])  // the second call does nothing
        #expect(fileText(root + "/options/record-tgid") == "1\n")
    }

    /// A setting that cannot be changed half way: what was changed is put back before the error.
    @Test func failureHalfWayRestoresWhatWasChanged() throws {
        let root = try fakeTracefs()
        let target = try TracefsTarget.find(tracefs: root, buffer: .topLevel)
        try FileManager.default.removeItem(atPath: root + "/tracing_on")
        let error = kind { () throws(TraceError) in _ = try TracefsSession(target) }
        #expect(error?.0 == .io && error?.1.contains("tracing_on") == true)
        for e in target.events { #expect(fileText("\(root)/events/kvm/\(e)/enable") == "0\n") }
        #expect(fileText(root + "/options/record-tgid") == "0\n")
    }

    /// mkdir in a fake tree makes an empty directory, not an instance: removed again, and 69.
    @Test func createdInstanceWithoutEventsIsRemoved() throws {
        let root = try fakeTracefs()
        let error = kind { () throws(TraceError) in _ = try TracefsSession(try TracefsTarget.find(tracefs: root, buffer: .instance("x"))) }
        #expect(error?.0 == .unavailable)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/instances") == [])
    }
}
