// libsystemd's non-variadic entry points; Swift cannot call sd_journal_send (variadic).
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <sys/uio.h>
