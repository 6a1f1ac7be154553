/* Stack descriptions: nodes, their parameter values, the text form of
 * each parameter type and its rule. conf/ fills nodes from text; the
 * same tables print them back. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "disklib/driver.h"
#include "disklib/util.h"

const char *dl_driver_name(const struct dl_driver *drv)
{
    return drv->name;
}

const char *dl_driver_summary(const struct dl_driver *drv)
{
    return drv->summary;
}

const struct dl_param *dl_driver_params(const struct dl_driver *drv,
                                        size_t *ret_n)
{
    *ret_n = drv->nparams;
    return drv->params;
}

void dl_driver_children(const struct dl_driver *drv, unsigned *ret_min,
                        unsigned *ret_max)
{
    *ret_min = drv->min_children;
    *ret_max = drv->max_children;
}

int dl_node_new(const struct dl_driver *drv, struct dl_node **ret)
{
    struct dl_node *n = calloc(1, sizeof(*n));

    if (!n)
        return -ENOMEM;
    n->drv = drv;
    n->v = calloc(drv->nparams ? drv->nparams : 1, sizeof(*n->v));
    if (!n->v) {
        free(n);
        return -ENOMEM;
    }
    *ret = n;
    return 0;
}

void dl_node_free(struct dl_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nchild; i++)
        dl_node_free(n->child[i]);
    free(n->child);
    if (n->v)
        for (size_t i = 0; i < n->drv->nparams; i++)
            free(n->v[i].s);
    free(n->v);
    free(n->where);
    free(n);
}

int dl_node_add_child(struct dl_node *n, struct dl_node *child)
{
    struct dl_node **c = realloc(n->child, (n->nchild + 1) * sizeof(*c));

    if (!c)
        return -ENOMEM;
    n->child = c;
    n->child[n->nchild++] = child;
    return 0;
}

int dl_node_set_where(struct dl_node *n, const char *where)
{
    char *w = where ? strdup(where) : NULL;

    if (where && !w)
        return -ENOMEM;
    free(n->where);
    n->where = w;
    return 0;
}

int dl_node_param_index(const struct dl_node *n, const char *name)
{
    for (size_t i = 0; i < n->drv->nparams; i++)
        if (strcmp(n->drv->params[i].name, name) == 0)
            return (int)i;
    return -ENOENT;
}

const char *dl_param_rule(const struct dl_param *p, char *buf, size_t len)
{
    char a[24], b[24];
    size_t off;

    switch (p->type) {
    case DL_P_STRING:
        return "must be a string";
    case DL_P_PATH:
        return "must be a non-empty path";
    case DL_P_BOOL:
        return "must be true or false";
    case DL_P_DURATION:
        return "must be a duration with a unit (ns, us, ms, s) such as 5ms";
    case DL_P_SIZE:
        if (p->multiple_of)
            snprintf(buf, len,
                     "must be a size such as 8G (binary units K, M, G, T) "
                     "and a multiple of %s",
                     dl_format_size(p->multiple_of, a, sizeof(a)));
        else
            snprintf(buf, len,
                     "must be a size such as 8G (binary units K, M, G, T)");
        if (p->min || p->max) {
            off = strlen(buf);
            snprintf(buf + off, len - off, ", from %s to %s",
                     dl_format_size(p->min, a, sizeof(a)),
                     p->max ? dl_format_size(p->max, b, sizeof(b))
                            : "unlimited");
        }
        return buf;
    case DL_P_UINT:
        if (p->multiple_of && is_pow2(p->multiple_of) && p->min &&
            p->max && is_pow2(p->min) && is_pow2(p->max))
            snprintf(buf, len,
                     "must be a power of two from %" PRIu64 " to %" PRIu64,
                     p->min, p->max);
        else
            snprintf(buf, len, "must be an integer from %" PRIu64 " to %" PRIu64,
                     p->min, p->max);
        return buf;
    case DL_P_ENUM:
        off = (size_t)snprintf(buf, len, "must be one of");
        for (size_t i = 0; p->choices[i] && off < len; i++)
            off += (size_t)snprintf(buf + off, len - off, "%s %s",
                                    i ? "," : "", p->choices[i]);
        return buf;
    }
    return "invalid";
}

/* Check a numeric value against the table; on failure explain the rule. */
static int param_check_u64(const struct dl_param *p, uint64_t v,
                           char **ret_msg)
{
    char rule[256];
    bool ok = true;

    switch (p->type) {
    case DL_P_BOOL:
        ok = v <= 1;
        break;
    case DL_P_UINT:
        ok = v >= p->min && v <= p->max;
        if (ok && p->multiple_of && is_pow2(p->multiple_of) && p->min &&
            is_pow2(p->min))
            ok = is_pow2(v);
        else if (ok && p->multiple_of)
            ok = v % p->multiple_of == 0;
        break;
    case DL_P_SIZE:
        ok = v >= p->min && (!p->max || v <= p->max) &&
             (!p->multiple_of || v % p->multiple_of == 0);
        break;
    case DL_P_DURATION:
        ok = true;
        break;
    default:
        ok = false;
        break;
    }
    if (!ok) {
        dl_msg(ret_msg, "%s", dl_param_rule(p, rule, sizeof(rule)));
        return -EINVAL;
    }
    return 0;
}

int dl_node_set_u64(struct dl_node *n, const char *name, uint64_t v,
                    char **ret_msg)
{
    int i = dl_node_param_index(n, name), r;

    if (i < 0) {
        dl_msg(ret_msg, "unknown setting for %s", n->drv->name);
        return -ENOENT;
    }
    r = param_check_u64(&n->drv->params[i], v, ret_msg);
    if (r < 0)
        return r;
    n->v[i].u = v;
    n->v[i].set = true;
    return 0;
}

static int param_parse(const struct dl_param *p, const char *text,
                       struct dl_value *ret, char **ret_msg)
{
    char rule[256];
    uint64_t u = 0;
    int r = 0;

    switch (p->type) {
    case DL_P_STRING:
    case DL_P_PATH:
        if (p->type == DL_P_PATH && !*text) {
            dl_msg(ret_msg, "%s", dl_param_rule(p, rule, sizeof(rule)));
            return -EINVAL;
        }
        ret->s = strdup(text);
        if (!ret->s)
            return -ENOMEM;
        ret->set = true;
        return 0;
    case DL_P_BOOL:
        if (!strcmp(text, "true") || !strcmp(text, "on") ||
            !strcmp(text, "yes") || !strcmp(text, "1"))
            u = 1;
        else if (!strcmp(text, "false") || !strcmp(text, "off") ||
                 !strcmp(text, "no") || !strcmp(text, "0"))
            u = 0;
        else
            r = -EINVAL;
        break;
    case DL_P_SIZE:
        r = dl_parse_size(text, &u);
        break;
    case DL_P_UINT:
        r = dl_parse_u64(text, &u);
        break;
    case DL_P_DURATION:
        r = dl_parse_duration(text, &u);
        break;
    case DL_P_ENUM:
        r = -EINVAL;
        for (size_t i = 0; p->choices[i]; i++) {
            if (strcmp(p->choices[i], text) == 0) {
                u = i;
                r = 0;
                break;
            }
        }
        if (r == 0) {
            ret->u = u;
            ret->set = true;
            return 0;
        }
        break;
    }
    if (r == -ERANGE) {
        dl_msg(ret_msg, "does not fit in 64 bits; %s",
               dl_param_rule(p, rule, sizeof(rule)));
        return -EINVAL;
    }
    if (r < 0) {
        dl_msg(ret_msg, "%s", dl_param_rule(p, rule, sizeof(rule)));
        return -EINVAL;
    }
    r = param_check_u64(p, u, ret_msg);
    if (r < 0)
        return r;
    ret->u = u;
    ret->set = true;
    return 0;
}

int dl_node_set(struct dl_node *n, const char *name, const char *text,
                char **ret_msg)
{
    struct dl_value v = {0};
    int i = dl_node_param_index(n, name), r;

    if (i < 0) {
        dl_msg(ret_msg, "unknown setting for %s", n->drv->name);
        return -ENOENT;
    }
    r = param_parse(&n->drv->params[i], text, &v, ret_msg);
    if (r < 0)
        return r;
    free(n->v[i].s);
    n->v[i] = v;
    return 0;
}

int dl_param_format(const struct dl_param *p, const struct dl_value *v,
                    char **ret)
{
    char buf[32], *s;

    switch (p->type) {
    case DL_P_STRING:
    case DL_P_PATH:
        s = strdup(v->s ? v->s : "");
        break;
    case DL_P_BOOL:
        s = strdup(v->u ? "true" : "false");
        break;
    case DL_P_SIZE:
        s = strdup(dl_format_size(v->u, buf, sizeof(buf)));
        break;
    case DL_P_UINT:
        snprintf(buf, sizeof(buf), "%" PRIu64, v->u);
        s = strdup(buf);
        break;
    case DL_P_ENUM:
        s = strdup(p->choices[v->u]);
        break;
    case DL_P_DURATION:
        if (v->u % 1000000000 == 0)
            snprintf(buf, sizeof(buf), "%" PRIu64 "s", v->u / 1000000000);
        else if (v->u % 1000000 == 0)
            snprintf(buf, sizeof(buf), "%" PRIu64 "ms", v->u / 1000000);
        else if (v->u % 1000 == 0)
            snprintf(buf, sizeof(buf), "%" PRIu64 "us", v->u / 1000);
        else
            snprintf(buf, sizeof(buf), "%" PRIu64 "ns", v->u);
        s = strdup(buf);
        break;
    default:
        return -EINVAL;
    }
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

static int node_validate_one(struct dl_node *n, char **ret_msg)
{
    const struct dl_driver *drv = n->drv;
    int r;

    for (size_t i = 0; i < drv->nparams; i++) {
        const struct dl_param *p = &drv->params[i];

        if (n->v[i].set)
            continue;
        if (p->required) {
            dl_msg(ret_msg, "%s needs the setting '%s' (%s)", drv->name,
                   p->name, p->help);
            return -EINVAL;
        }
        if (p->def) {
            r = param_parse(p, p->def, &n->v[i], ret_msg);
            if (r < 0)
                return r;
        }
    }
    if (n->nchild < drv->min_children || n->nchild > drv->max_children) {
        if (drv->min_children == drv->max_children)
            dl_msg(ret_msg, "%s takes %s", drv->name,
                   drv->min_children == 0   ? "no disk below it"
                   : drv->min_children == 1 ? "exactly one disk below it"
                                            : "a fixed number of disks");
        else
            dl_msg(ret_msg, "%s takes from %u to %u disks below it",
                   drv->name, drv->min_children, drv->max_children);
        return -EINVAL;
    }
    if (drv->validate)
        return drv->validate(n, ret_msg);
    return 0;
}

int dl_node_validate(struct dl_node *n, char **ret_msg)
{
    _cleanup_free_ char *msg = NULL;
    int r;

    r = node_validate_one(n, &msg);
    if (r < 0) {
        if (n->where)
            dl_msg_prefix(&msg, "%s", n->where);
        if (ret_msg && !*ret_msg)
            *ret_msg = TAKE_PTR(msg);
        return r;
    }
    for (size_t i = 0; i < n->nchild; i++) {
        r = dl_node_validate(n->child[i], ret_msg);
        if (r < 0)
            return r;
    }
    return 0;
}
