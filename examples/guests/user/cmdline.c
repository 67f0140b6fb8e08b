/* SPDX-License-Identifier: MIT */
/*
 * cmdline.c - the guest command line: workloads separated by ';'.
 *
 * "dirty --mib 64 --rate 100; verify; exit 0" is split at ';', each part
 * into words at blanks; the first word names the workload, the rest are its
 * flags ("--name value" or "--name=value") and positional values, all
 * unsigned numbers (decimal or 0x hex), or for a flag with a word list one
 * of its words (the value is the word's index). The whole line is checked before
 * the first workload starts, so a typo at the end does not waste a run;
 * every error is one line saying what is wrong, and the guest exits with 2.
 * A first part `--timer KIND` is no workload: it asks for the interrupt
 * mode (timer.c).
 */
#include "lib/parse.h"
#include "lib/string.h"
#include "user/user.h"
#include "user/workload.h"

static char cmdline_buf[GUEST_CMDLINE_MAX];

static bool cmdline_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Split s in place into words; returns the count, or -1 if too many. */
static int cmdline_words(char *s, char **words)
{
	int n = 0;

	for (;;) {
		while (cmdline_blank(*s))
			*s++ = '\0';
		if (!*s)
			return n;
		if (n == WL_MAX_WORDS)
			return -1;
		words[n++] = s;
		while (*s && !cmdline_blank(*s))
			s++;
	}
}

static int cmdline_find_flag(const struct workload *wl, const char *name)
{
	int i;

	for (i = 0; wl->flags[i].name; i++)
		if (!wl->flags[i].positional &&
		    !strcmp(wl->flags[i].name, name))
			return i;
	return -1;
}

static int cmdline_find_positional(const struct workload *wl, int nth)
{
	int i;

	for (i = 0; wl->flags[i].name; i++)
		if (wl->flags[i].positional && nth-- == 0)
			return i;
	return -1;
}

/* The index of val in the flag's word list, or -1. */
static int cmdline_word(const struct wl_flag *fl, const char *val)
{
	int i;

	for (i = 0; fl->words && fl->words[i]; i++)
		if (!strcmp(fl->words[i], val))
			return i;
	return -1;
}

static void cmdline_bad_word(const struct wl_call *c, const struct wl_flag *fl,
			     const char *val)
{
	char list[96];
	size_t n = 0, len;
	int i;

	list[0] = '\0';
	for (i = 0; fl->words[i]; i++) {
		len = strlen(fl->words[i]);
		if (n + len + 3 > sizeof(list))
			break;
		if (i) {
			memcpy(list + n, ", ", 2);
			n += 2;
		}
		memcpy(list + n, fl->words[i], len + 1);
		n += len;
	}
	console_printf("guest: %s: bad value '%s' for --%s (want one of %s)\n",
		       c->wl->name, val, fl->name, list);
}

static int cmdline_value(struct wl_call *c, int f, const char *val)
{
	const struct wl_flag *fl = &c->wl->flags[f];
	const char *dash = fl->positional ? "" : "--";
	uint64_t v;

	if (c->given[f]) {
		console_printf("guest: %s: %s%s given twice\n", c->wl->name,
			       dash, fl->name);
		return -1;
	}
	if (fl->words) {
		int w = cmdline_word(fl, val);

		if (w < 0) {
			cmdline_bad_word(c, fl, val);
			return -1;
		}
		c->val[f] = (uint64_t)w;
		c->given[f] = true;
		return 0;
	}
	if (parse_u64(val, &v) < 0 || v < fl->min || v > fl->max) {
		console_printf("guest: %s: bad value '%s' for %s%s (want a "
			       "number from %lu to %lu)\n",
			       c->wl->name, val, dash, fl->name, fl->min,
			       fl->max);
		return -1;
	}
	c->val[f] = v;
	c->given[f] = true;
	return 0;
}

/* One word (and maybe the next) at *i; advances *i past what it used. */
static int cmdline_arg(struct wl_call *c, int argc, char **argv, int *i,
		       int *nth_pos)
{
	char *a = argv[*i], *val = NULL, *eq;
	int f;

	if (a[0] != '-' || a[1] != '-') {
		f = cmdline_find_positional(c->wl, (*nth_pos)++);
		if (f < 0) {
			console_printf("guest: %s: unexpected argument '%s'\n",
				       c->wl->name, a);
			return -1;
		}
		return cmdline_value(c, f, a);
	}
	eq = strchr(a, '=');
	if (eq) {
		*eq = '\0';
		val = eq + 1;
	}
	f = cmdline_find_flag(c->wl, a + 2);
	if (f < 0) {
		console_printf("guest: %s: unknown flag '%s'\n", c->wl->name,
			       a);
		return -1;
	}
	if (!val) {
		if (*i + 1 >= argc) {
			console_printf("guest: %s: %s needs a value\n",
				       c->wl->name, a);
			return -1;
		}
		val = argv[++*i];
	}
	return cmdline_value(c, f, val);
}

static int cmdline_call(int argc, char **argv, struct wl_call *c)
{
	int i, nth_pos = 0;

	c->wl = workload_find(argv[0]);
	if (!c->wl) {
		char names[128];

		workload_names(names, sizeof(names));
		console_printf("guest: unknown workload '%s' (known: %s)\n",
			       argv[0], names);
		return -1;
	}
	for (i = 1; i < argc; i++)
		if (cmdline_arg(c, argc, argv, &i, &nth_pos) < 0)
			return -1;
	for (i = 0; c->wl->flags[i].name; i++) {
		if (c->wl->flags[i].required && !c->given[i]) {
			console_printf("guest: %s: missing %s%s\n", c->wl->name,
				       c->wl->flags[i].positional ? "" : "--",
				       c->wl->flags[i].name);
			return -1;
		}
	}
	return 0;
}

/* `--timer KIND`, only as the first part (CPU 1 looks for it there). */
static int cmdline_timer(int n, char **words, struct wl_seq *seq)
{
	if (seq->nr || seq->timer) {
		console_printf("guest: --timer must come first, once\n");
		return -1;
	}
	if (n != 2 || !(seq->timer = timer_kind_parse(words[1]))) {
		console_printf(
			"guest: --timer wants one of lapic, tscdeadline, "
			"pit\n");
		return -1;
	}
	return 0;
}

static int cmdline_part(char *part, struct wl_seq *seq)
{
	char *words[WL_MAX_WORDS];
	int n = cmdline_words(part, words);

	if (n < 0) {
		console_printf("guest: a workload has more than %d words\n",
			       WL_MAX_WORDS);
		return -1;
	}
	if (n == 0)
		return 0; /* empty part: "a;;b" or a trailing ';' */
	if (!strcmp(words[0], "--timer"))
		return cmdline_timer(n, words, seq);
	if (seq->nr == WL_MAX_CALLS) {
		console_printf("guest: more than %d workloads\n", WL_MAX_CALLS);
		return -1;
	}
	return cmdline_call(n, words, &seq->call[seq->nr++]);
}

int cmdline_parse(const char *cmdline, struct wl_seq *seq)
{
	size_t len = strnlen(cmdline, GUEST_CMDLINE_MAX - 1);
	char *part = cmdline_buf, *semi;

	memcpy(cmdline_buf, cmdline, len);
	cmdline_buf[len] = '\0';
	memset(seq, 0, sizeof(*seq));
	for (;;) {
		semi = strchr(part, ';');
		if (semi)
			*semi = '\0';
		if (cmdline_part(part, seq) < 0)
			return -1;
		if (!semi)
			return 0;
		part = semi + 1;
	}
}
