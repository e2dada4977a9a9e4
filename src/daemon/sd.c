#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "daemon/sd.h"

static void notify_status(const char *head, const char *fmt, va_list ap)
{
	char status[256];

	vsnprintf(status, sizeof(status), fmt, ap);
	/* unset_environment = 0: children (the lab's, a shell) never see it
	 * anyway, and the daemon notifies many times. */
	sd_notifyf(0, "%sSTATUS=%s", head, status);
}

void su_sd__ready(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	notify_status("READY=1\n", fmt, ap);
	va_end(ap);
}

void su_sd__status(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	notify_status("", fmt, ap);
	va_end(ap);
}

void su_sd__stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

void su_sd__reloading(void)
{
	sd_notify(0, "RELOADING=1");
}

int su_sd__watchdog_fd(void)
{
	uint64_t usec = 0;
	struct itimerspec its = { 0 };
	int fd;

	if (sd_watchdog_enabled(0, &usec) <= 0 || !usec)
		return -1;
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	/* Half the interval, as sd_watchdog_enabled(3) recommends. */
	its.it_interval.tv_sec = (time_t)(usec / 2 / 1000000);
	its.it_interval.tv_nsec = (long)(usec / 2 % 1000000 * 1000);
	its.it_value = its.it_interval;
	if (timerfd_settime(fd, 0, &its, NULL)) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	sd_notify(0, "WATCHDOG=1");
	return fd;
}

void su_sd__watchdog_ping(int fd)
{
	uint64_t expirations;

	if (read(fd, &expirations, sizeof(expirations)) == sizeof(expirations))
		sd_notify(0, "WATCHDOG=1");
}
