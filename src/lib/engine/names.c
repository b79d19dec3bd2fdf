/* Container names: Docker's shape of a generated name, "adjective_surname", from lists of our
 * own (adjectives of temperament, and people who shaped computing and science). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "container.h"

static const char *const adjectives[] = {
    "able",     "agile",   "amiable", "ardent", "artful",   "blithe",   "bold",    "brave",
    "bright",   "brisk",   "calm",    "candid", "careful",  "cheerful", "clever",  "cosmic",
    "curious",  "daring",  "dapper",  "deft",   "diligent", "eager",    "earnest", "elated",
    "fearless", "fervent", "gallant", "gentle", "gleeful",  "hardy",    "hearty",  "humble",
    "jolly",    "jovial",  "keen",    "kindly", "lively",   "loyal",    "lucid",   "merry",
    "mellow",   "modest",  "nimble",  "noble",  "patient",  "placid",   "plucky",  "poised",
    "proud",    "quiet",   "radiant", "rapid",  "serene",   "sincere",  "snappy",  "spry",
    "steady",   "stoic",   "sunny",   "swift",  "tender",   "thrifty",  "tidy",    "upbeat",
    "valiant",  "vivid",   "wise",    "witty",  "zealous",  "zesty",
};

static const char *const surnames[] = {
    "allen",   "babbage",   "backus",   "bardeen", "bohr",    "boole",    "brattain",  "cerf",
    "church",  "codd",      "conway",   "cray",    "curie",   "dijkstra", "engelbart", "euler",
    "faraday", "fermi",     "feynman",  "floyd",   "gauss",   "goldberg", "hamming",   "hartree",
    "hilbert", "hodgkin",   "hoare",    "hopper",  "huffman", "jackson",  "johnson",   "kahan",
    "kay",     "kernighan", "knuth",    "lamarr",  "lamport", "liskov",   "lovelace",  "mccarthy",
    "meitner", "minsky",    "moore",    "napier",  "naur",    "neumann",  "noether",   "pascal",
    "perlman", "pike",      "planck",   "ritchie", "rivest",  "shamir",   "shannon",   "sutherland",
    "tarjan",  "thompson",  "torvalds", "turing",  "wilkes",  "wirth",    "wozniak",   "yonath",
    "zuse",
};

static unsigned pick(size_t n)
{
    unsigned v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        v = (unsigned)rand();
    return v % (unsigned)n;
}

char *ks_container_name_generate(unsigned retry)
{
    char *name = NULL;
    const char *a = adjectives[pick(KS_ELEMENTSOF(adjectives))];
    const char *s = surnames[pick(KS_ELEMENTSOF(surnames))];
    int r = retry > 0 ? asprintf(&name, "%s_%s%u", a, s, pick(10)) : asprintf(&name, "%s_%s", a, s);
    return r < 0 ? NULL : name;
}

static bool name_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return !first && (c == '_' || c == '.' || c == '-');
}

bool ks_container_name_valid(const char *name)
{
    if (name == NULL)
        return false;
    if (name[0] == '/')
        name++;
    size_t n = strlen(name);
    if (n < 2 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char(name[i], i == 0))
            return false;
    return true;
}
