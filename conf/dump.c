/* Printing a configuration back in the expanded group form: every
 * setting with its resolved value (defaults included, paths absolute), so
 * that the output read back prints the same. */
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include "conf/conf.h"
#include "disklib/driver.h"
#include "disklib/util.h"

static void put_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        switch (*s) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\t': fputs("\\t", out); break;
        case '\r': fputs("\\r", out); break;
        case '\f': fputs("\\f", out); break;
        default:
            if ((unsigned char)*s < 0x20)
                fprintf(out, "\\x%02x", (unsigned char)*s);
            else
                fputc(*s, out);
        }
    }
    fputc('"', out);
}

static void put_value(FILE *out, const struct dl_param *p,
                      const struct dl_value *v)
{
    _cleanup_free_ char *text = NULL;

    switch (p->type) {
    case DL_P_BOOL:
        fputs(v->u ? "true" : "false", out);
        return;
    case DL_P_UINT:
        fprintf(out, "%" PRIu64 "%s", v->u, v->u > INT32_MAX ? "L" : "");
        return;
    default:
        if (dl_param_format(p, v, &text) == 0)
            put_string(out, text);
        else
            fputs("\"\"", out);
        return;
    }
}

static bool takes_layers(const struct dl_node *n)
{
    unsigned minc, maxc;

    dl_driver_children(n->drv, &minc, &maxc);
    return maxc > 1;
}

void conf_dump_stack(const struct dl_node *n, FILE *out, int indent)
{
    size_t np;
    const struct dl_param *params = dl_driver_params(n->drv, &np);

    fputs("{\n", out);
    fprintf(out, "%*stype = ", indent + 2, "");
    put_string(out, dl_driver_name(n->drv));
    fputs(";\n", out);
    for (size_t i = 0; i < np; i++) {
        if (!n->v[i].set)
            continue;
        fprintf(out, "%*s%s = ", indent + 2, "", params[i].name);
        put_value(out, &params[i], &n->v[i]);
        fputs(";\n", out);
    }
    if (n->read_only)
        fprintf(out, "%*sread_only = true;\n", indent + 2, "");
    {
        static const struct {
            const char *key;
            size_t off;
        } flags[] = {
            {"read_cache", offsetof(struct dl_node, read_cache)},
            {"write_through", offsetof(struct dl_node, write_through)},
            {"snapshot", offsetof(struct dl_node, snapshot)},
            {"frozen", offsetof(struct dl_node, frozen)},
        };

        for (size_t i = 0; i < ARRAY_SIZE(flags); i++)
            if (*(const bool *)((const char *)n + flags[i].off))
                fprintf(out, "%*s%s = true;\n", indent + 2, "",
                        flags[i].key);
    }
    if (n->nchild == 1 && !takes_layers(n)) {
        fprintf(out, "%*sdisk = ", indent + 2, "");
        conf_dump_stack(n->child[0], out, indent + 2);
        fputs(";\n", out);
    } else if (n->nchild) {
        fprintf(out, "%*slayers = (\n", indent + 2, "");
        for (size_t i = 0; i < n->nchild; i++) {
            fprintf(out, "%*s", indent + 4, "");
            conf_dump_stack(n->child[i], out, indent + 4);
            fputs(i + 1 < n->nchild ? ",\n" : "\n", out);
        }
        fprintf(out, "%*s);\n", indent + 2, "");
    }
    fprintf(out, "%*s}", indent, "");
}

void conf_dump(const struct conf *c, FILE *out)
{
    fputs("mount = {\n", out);
    fprintf(out, "  allow_other = %s;\n",
            c->mount.allow_other ? "true" : "false");
    if (c->mount.threads)
        fprintf(out, "  threads = %u;\n", c->mount.threads);
    if (c->mount.cache_dir) {
        fputs("  cache_dir = ", out);
        put_string(out, c->mount.cache_dir);
        fputs(";\n", out);
    }
    fputs("};\n", out);
    fputs("disks = (\n", out);
    for (size_t i = 0; i < c->ndisks; i++) {
        const struct conf_disk *d = &c->disks[i];

        fputs("  {\n    name = ", out);
        put_string(out, d->name);
        fprintf(out, ";\n    read_only = %s;\n",
                d->read_only ? "true" : "false");
        fputs("    stack = ", out);
        conf_dump_stack(d->stack, out, 4);
        fprintf(out, ";\n  }%s\n", i + 1 < c->ndisks ? "," : "");
    }
    fputs(");\n", out);
}
