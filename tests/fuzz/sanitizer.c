/* Defaults for the sanitizers, linked into every fuzz and replay program
 * so that a fuzzing run and a test replay judge an input the same way
 * without environment variables. The runtimes look these functions up
 * when present; programs built without sanitizers never call them. */
const char *__lsan_default_suppressions(void);
const char *__ubsan_default_options(void);

/* libconfig 1.5 (Debian 12) leaks the string token just scanned when its
 * parser stops on a syntax error right after it, as in `a = 1, "x")`:
 * the grammar has no %destructor for TOK_STRING (upstream
 * hyperrealm/libconfig issue #142, fixed in later releases). The string
 * comes from the scanner's buffer (strbuf_append) or, when empty, from a
 * calloc in the scanner itself (libconfig_yylex). Only those two are
 * suppressed, so a configuration that diskstack forgets to
 * config_destroy() still shows up as a leak of its settings. The
 * corpus keeps both inputs (libconfig-leak-*). */
const char *__lsan_default_suppressions(void)
{
    return "leak:strbuf_append\n"
           "leak:libconfig_yylex\n";
}

/* Undefined behaviour is a finding: stop at the first report (libFuzzer
 * only notices a crash), with a stack. */
const char *__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}
