/* systemd service notification for the long-running commands (router,
 * agent, proxy), after sd_notify(3) and sd_watchdog_enabled(3).
 *
 * Units run them as Type=notify: READY=1 is sent once the first plan is
 * applied (not when the process starts), so `systemctl start` returns when
 * the node forwards, and units ordered After= it can rely on that.  Under
 * WatchdogSec= the daemon's own event loop pings (a timerfd in its poll
 * set at half the interval), so a wedged loop — not merely a live process —
 * is what systemd restarts.  Outside systemd (no $NOTIFY_SOCKET) every call
 * is a no-op. */
#ifndef SU_DAEMON_SD_H
#define SU_DAEMON_SD_H

/* READY=1 with a STATUS= line (printf format), e.g. "plan serial 7 applied". */
void su_sd__ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* STATUS= only: shown by `systemctl status`. */
void su_sd__status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* STOPPING=1: the daemon is undoing its state before exit. */
void su_sd__stopping(void);
/* RELOADING=1 before applying a new plan; su_sd__ready() ends it. */
void su_sd__reloading(void);

/* A CLOCK_MONOTONIC timerfd that fires every half WatchdogSec, for the
 * daemon's poll set; -1 when the unit has no watchdog (or it is not for this
 * process).  -errno when the timer cannot be made. */
int su_sd__watchdog_fd(void);
/* Drains the timerfd and sends WATCHDOG=1. */
void su_sd__watchdog_ping(int fd);

#endif
