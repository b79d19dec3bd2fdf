/* Shared between the Dockerfile parser's files; not part of the module's interface. */
#pragma once

#include "dockerfile.h"
#include "text.h"

/* A growing argument list of a node. */
struct df_list {
    char **v;
    size_t *lens;
    size_t n, cap;
    bool oom;
};

void df_list_add(struct df_list *l, const char *s, size_t n);
void df_list_free(struct df_list *l);

/* Splits BuildKit's leading "--flag" words off args; *ret_rest points into args. */
int df_extract_flags(const char *args, struct df_list *flags, const char **ret_rest);

/* Fills node->args and node->json from the text after the instruction and its flags, as
 * BuildKit's parser for node->instr does. */
int df_parse_args(struct ks_df_node *node, const char *rest, char escape, struct ks_error **err);

/* Parses a JSON array of strings into l: 1 when rest is one, 0 when rest is not valid JSON,
 * -EINVAL when it is valid JSON with other values than strings, -ENOMEM. */
int df_json_string_array(const char *rest, struct df_list *l);

/* The heredocs announced on a line (<<EOF, <<-"EOF", 3<<EOF …), their content not yet read. */
int df_heredocs_from_line(const char *line, struct ks_df_heredoc **ret, size_t *ret_n,
                          struct ks_error **err);

/* Go's unicode.IsSpace applied to a single byte, as BuildKit's byte loops do. */
static inline bool df_byte_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85 || c == 0xA0;
}
