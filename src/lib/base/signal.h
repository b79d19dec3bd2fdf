/* Signal names as users type them: for `kill -s`, --stop-signal, an image's StopSignal and the
 * runtime's `kill ID SIGNAL`. */
#pragma once

/* Parses "TERM", "SIGTERM", "term", "15", "RTMIN", "RTMIN+3", "RTMAX-2" into *ret_sig.
 * -EINVAL for anything else, including numbers outside 1 … NSIG-1. */
int ks_signal_parse(const char *s, int *ret_sig);
