import Foundation
import NestCacheWorkload
import Testing

/// QEMU's `-name` as a VM id (DESIGN §11): QEMU's option syntax, then the id alphabet of DESIGN §1.
@Suite struct QEMUNameTests {
    func name(_ args: [String]) -> String? {
        var cmdline: [UInt8] = []
        for a in args { cmdline += Array(a.utf8) + [0] }
        return QEMUName.guestName(cmdline: cmdline).flatMap(QEMUName.sanitised)
    }

    @Test func libvirtsGuestKey() {
        #expect(name(["/usr/bin/qemu-system-x86_64", "-name", "guest=web0,debug-threads=on", "-m", "4096"]) == "web0")
        #expect(name(["qemu", "-name", "debug-threads=on,guest=db1"]) == "db1")
    }

    @Test func impliedKeyDoubleDashAndTheLastNameWins() {
        #expect(name(["qemu", "-name", "web1"]) == "web1")
        #expect(name(["qemu", "-name", "web1,process=qemu:web1"]) == "web1")
        #expect(name(["qemu", "--name", "a", "-name", "b"]) == "b")
    }

    @Test func commasAreEscapedByDoublingAndOtherBytesBecomeUnderscores() {
        #expect(name(["qemu", "-name", "db,,1,debug-threads=on"]) == "db_1")
        #expect(name(["qemu", "-name", "guest=my vm/é"]) == "my_vm___")  // é is two bytes
        #expect(name(["qemu", "-name", String(repeating: "x", count: 100)]) == String(repeating: "x", count: 64))
    }

    @Test func noNameEmptyNameOrNameWithoutValue() {
        #expect(name(["qemu", "-m", "4096"]) == nil)
        #expect(name(["qemu", "-name", ""]) == nil)
        #expect(name(["qemu", "-name", "process=p"]) == nil)
        #expect(name(["qemu", "-name"]) == nil)
        #expect(name(["qemu-name", "x"]) == nil)
    }

    @Test func readsProcTGIDCmdlineUnderTheGivenDirectory() throws {
        let dir = try temporaryFile("", name: "unused")
        let proc = (dir as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: proc + "/4242", withIntermediateDirectories: true)
        try Data("qemu\0-name\0guest=web0,debug-threads=on\0".utf8).write(to: URL(fileURLWithPath: proc + "/4242/cmdline"))
        let names = QEMUName(proc: proc)
        #expect(names.vmID(tgid: 4242) == "web0")
        #expect(names.vmID(tgid: 4243) == nil)  // no such process (it exited): the caller uses the tgid
        #expect(names.vmID(tgid: 0) == nil)
    }
}
