/*
 * banned.h: the libc functions egov does not call, made compile errors (as
 * git's banned.h does). Each has a bounded or checked replacement, which
 * the error names: a call to strcpy() fails to compile with
 *   error: 'sorry_strcpy_is_banned_use_buf_adds_or_snprintf' undeclared
 *
 * Every .c file of src/, tests/unit and tests/fuzz includes it as its LAST
 * include, after every system header: the macros below would otherwise
 * rewrite glibc's own declarations of these functions (a forced -include
 * before the system headers does exactly that, and breaks the build).
 * No header includes it, for the same reason. scripts/check-banned.sh
 * checks both, greps for the calls as a second net, and proves that a call
 * after this header does not compile.
 *
 * The macros are function-like, so only a call is caught: strtok_r, a
 * struct member or a comment naming one of them is left alone.
 */
#ifndef EGOV_CORE_BANNED_H
#define EGOV_CORE_BANNED_H

#define EGOV_BANNED(func, use) sorry_##func##_is_banned_use_##use

/* Unbounded copies: no size, so a long input overruns the buffer. */
#undef strcpy
#define strcpy(...) EGOV_BANNED(strcpy, buf_adds_or_snprintf)
#undef strcat
#define strcat(...) EGOV_BANNED(strcat, buf_adds_or_snprintf)
#undef sprintf
#define sprintf(...) EGOV_BANNED(sprintf, snprintf_or_buf_addf)
#undef vsprintf
#define vsprintf(...) EGOV_BANNED(vsprintf, vsnprintf)

/* Bounded, but strncpy leaves the result unterminated when it is cut and
 * strncat's bound is what is left, not the buffer's size. */
#undef strncpy
#define strncpy(...) EGOV_BANNED(strncpy, snprintf_or_memcpy_with_lengths)
#undef strncat
#define strncat(...) EGOV_BANNED(strncat, snprintf_or_memcpy_with_lengths)

/* Hidden state shared by every thread. */
#undef strtok
#define strtok(...) EGOV_BANNED(strtok, strtok_r_or_a_cursor_parser)
#undef gmtime
#define gmtime(...) EGOV_BANNED(gmtime, gmtime_r)
#undef localtime
#define localtime(...) EGOV_BANNED(localtime, localtime_r)
#undef ctime
#define ctime(...) EGOV_BANNED(ctime, gmtime_r_and_strftime)
#undef asctime
#define asctime(...) EGOV_BANNED(asctime, gmtime_r_and_strftime)

/* Silent on junk and undefined on overflow: atoi("12abc") is 12. */
#undef atoi
#define atoi(...) EGOV_BANNED(atoi, strtoll_with_range_checks)
#undef atol
#define atol(...) EGOV_BANNED(atol, strtoll_with_range_checks)
#undef atoll
#define atoll(...) EGOV_BANNED(atoll, strtoll_with_range_checks)

/* No bound at all. */
#undef gets
#define gets(...) EGOV_BANNED(gets, fgets)

#endif
