/* SPDX-License-Identifier: MIT */
/*
 * format.c - a small vsnprintf for both rings of the guest.
 *
 * Ring-0 code (the panic message) and ring-3 code (console lines) share it,
 * so it is built with -mgeneral-regs-only and handles no floating point.
 * Output goes through a tiny cursor that drops whatever does not fit, which
 * keeps every conversion free of bounds arithmetic.
 */
#include <stdint.h>

#include "lib/format.h"
#include "lib/string.h"

struct fmt_out {
	char *buf;
	size_t size; /* room for characters, the NUL excluded */
	size_t len;
};

struct fmt_spec {
	int width;
	int left;  /* '-' */
	int zero;  /* '0' */
	int longs; /* number of 'l' (z counts as 2) */
};

static void fmt_put(struct fmt_out *o, char c)
{
	if (o->len < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void fmt_pad(struct fmt_out *o, char c, int n)
{
	while (n-- > 0)
		fmt_put(o, c);
}

static void fmt_str(struct fmt_out *o, const struct fmt_spec *sp, const char *s,
		    size_t n)
{
	int pad = sp->width > (int)n ? sp->width - (int)n : 0;

	if (!sp->left)
		fmt_pad(o, sp->zero ? '0' : ' ', pad);
	while (n--)
		fmt_put(o, *s++);
	if (sp->left)
		fmt_pad(o, ' ', pad);
}

/* Unsigned v in base 10 or 16, with an optional '-' in front. */
static void fmt_num(struct fmt_out *o, struct fmt_spec sp, uint64_t v,
		    unsigned int base, int upper, int neg)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = sizeof(tmp);

	do {
		tmp[--n] = digits[v % base];
		v /= base;
	} while (v);
	if (neg) {
		if (sp.zero && !sp.left) {
			fmt_put(o, '-');
			if (sp.width)
				sp.width--;
		} else {
			tmp[--n] = '-';
		}
	}
	fmt_str(o, &sp, tmp + n, sizeof(tmp) - n);
}

static uint64_t fmt_arg_unsigned(const struct fmt_spec *sp, va_list *ap)
{
	if (sp->longs >= 2)
		return va_arg(*ap, unsigned long long);
	if (sp->longs == 1)
		return va_arg(*ap, unsigned long);
	return va_arg(*ap, unsigned int);
}

static int64_t fmt_arg_signed(const struct fmt_spec *sp, va_list *ap)
{
	if (sp->longs >= 2)
		return va_arg(*ap, long long);
	if (sp->longs == 1)
		return va_arg(*ap, long);
	return va_arg(*ap, int);
}

/* Flags, width and length of one conversion; returns past them. */
static const char *fmt_parse_spec(const char *f, struct fmt_spec *sp,
				  va_list *ap)
{
	for (;; f++) {
		if (*f == '-')
			sp->left = 1;
		else if (*f == '0')
			sp->zero = 1;
		else
			break;
	}
	if (*f == '*') {
		sp->width = va_arg(*ap, int);
		f++;
	}
	while (*f >= '0' && *f <= '9')
		sp->width = sp->width * 10 + (*f++ - '0');
	for (;; f++) {
		if (*f == 'l')
			sp->longs++;
		else if (*f == 'z')
			sp->longs = 2;
		else
			break;
	}
	return f;
}

static void fmt_conv(struct fmt_out *o, char c, struct fmt_spec *sp,
		     va_list *ap)
{
	const char *s;
	int64_t sv;
	char ch;

	switch (c) {
	case 'd':
	case 'i':
		sv = fmt_arg_signed(sp, ap);
		fmt_num(o, *sp, sv < 0 ? 0 - (uint64_t)sv : (uint64_t)sv, 10, 0,
			sv < 0);
		break;
	case 'u':
		fmt_num(o, *sp, fmt_arg_unsigned(sp, ap), 10, 0, 0);
		break;
	case 'x':
	case 'X':
		fmt_num(o, *sp, fmt_arg_unsigned(sp, ap), 16, c == 'X', 0);
		break;
	case 'p':
		fmt_put(o, '0');
		fmt_put(o, 'x');
		fmt_num(o, *sp, (uintptr_t)va_arg(*ap, void *), 16, 0, 0);
		break;
	case 's':
		s = va_arg(*ap, const char *);
		if (!s)
			s = "(null)";
		fmt_str(o, sp, s, strlen(s));
		break;
	case 'c':
		ch = (char)va_arg(*ap, int);
		fmt_str(o, sp, &ch, 1);
		break;
	default: /* "%%" and anything unknown print as themselves */
		fmt_put(o, c);
		break;
	}
}

int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct fmt_out o = {buf, size ? size - 1 : 0, 0};
	va_list args;

	va_copy(args, ap);
	while (*fmt) {
		struct fmt_spec sp = {0};

		if (*fmt != '%') {
			fmt_put(&o, *fmt++);
			continue;
		}
		fmt = fmt_parse_spec(fmt + 1, &sp, &args);
		if (!*fmt)
			break;
		fmt_conv(&o, *fmt++, &sp, &args);
	}
	va_end(args);
	if (size)
		buf[o.len < o.size ? o.len : o.size] = '\0';
	return (int)(o.len < o.size ? o.len : o.size);
}

int fmt_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = fmt_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
