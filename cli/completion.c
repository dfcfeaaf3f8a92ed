/* `vouchctl completion bash`: the bash completion script, made from the table of commands and
 * options that parses the command line (vouchctl.c, ctl_visit_options()), so that the two never
 * disagree. The actions a command takes as words (devices expect, tokens create, ...) and the
 * values of a few options are listed here, beside the help texts that name them. */
#include "vouchctl.h"

#include <stdio.h>
#include <string.h>

/* The words a command takes as its first argument; NULL: none to offer. */
static const struct {
    const char *subcommand;
    const char *words;
} actions[] = {
    {"devices", "expect expected"},
    {"tokens", "create revoke"},
    {"certs", "revoke"},
    {"events", "retry"},
    {"ca", "init"},
    {"config", "show servers"},
    {"completion", "bash"},
};

/* Options whose value is a file name. */
static const char file_options[] = "--config|--token-file|--file|-f|--out|-o|--cert|--key|--roots";

#define COMPLETION_MAX_GLOBALS 32

struct completion_table {
    FILE *out;
    const char *current; /* the subcommand whose case is open, or NULL */
    bool first;          /* nothing printed yet in the current list */
    /* What the walk prints: 0 the commands, 1 the global options, 2 each command's options,
     * 3 the options that take a value, 4 a command's flag named as a global option that takes
     * one. */
    int pass;
    const char *globals_with_value[COMPLETION_MAX_GLOBALS];
    size_t nglobals;
};

static void option_word(FILE *out, const char *option, char short_name, bool *first)
{
    fprintf(out, "%s--%s", *first ? "" : " ", option);
    *first = false;
    if (short_name != 0)
        fprintf(out, " -%c", short_name);
}

static void visit(void *arg, const char *subcommand, const char *option, char short_name,
                  bool has_arg)
{
    struct completion_table *t = arg;

    switch (t->pass) {
    case 0:
        if (subcommand != NULL && option == NULL) {
            fprintf(t->out, "%s%s", t->first ? "" : " ", subcommand);
            t->first = false;
        }
        break;
    case 1:
        if (subcommand == NULL)
            option_word(t->out, option, short_name, &t->first);
        break;
    case 2:
        if (subcommand == NULL)
            break;
        if (option == NULL) {
            if (t->current != NULL)
                fputs("\";;\n", t->out);
            fprintf(t->out, "        %s) opts=\"", subcommand);
            t->current = subcommand;
            t->first = true;
        } else {
            option_word(t->out, option, short_name, &t->first);
        }
        break;
    case 4:
        /* `verify --server` is a flag, the global --server takes a NAME: the word after it
         * is verify's argument. */
        if (subcommand == NULL && has_arg && t->nglobals < COMPLETION_MAX_GLOBALS)
            t->globals_with_value[t->nglobals++] = option;
        for (size_t i = 0; subcommand != NULL && option != NULL && !has_arg && i < t->nglobals;
             i++) {
            if (strcmp(option, t->globals_with_value[i]) == 0)
                fprintf(t->out,
                        "--%s) [[ $sub == %s ]] || skip=1 ;;\n"
                        "            ",
                        option, subcommand);
        }
        break;
    case 3:
        if (option != NULL && has_arg) {
            fprintf(t->out, "%s--%s", t->first ? "" : "|", option);
            t->first = false;
            if (short_name != 0)
                fprintf(t->out, "|-%c", short_name);
        }
        break;
    default:
        break;
    }
}

static void print_bash(FILE *out)
{
    struct completion_table t = {.out = out, .first = true};

    fputs("# bash completion for vouchctl, made by 'vouchctl completion bash' from the\n"
          "# table vouchctl parses its command line with.\n"
          "_vouchctl()\n"
          "{\n"
          "    local cur prev sub i w opts=\"\" skip=0\n"
          "    cur=\"${COMP_WORDS[COMP_CWORD]}\"\n"
          "    prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
          "    local commands=\"",
          out);
    ctl_visit_options(visit, &t);
    fputs("\"\n    local global_opts=\"", out);
    t.pass = 1;
    t.first = true;
    ctl_visit_options(visit, &t);
    fputs("\"\n    local nargs=0\n"
          "    sub=\"\"\n"
          "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
          "        w=\"${COMP_WORDS[i]}\"\n"
          "        if ((skip)); then skip=0; continue; fi\n"
          "        case \"$w\" in\n",
          out);
    /* The options that take a value: the word after them is not the command. */
    fputs("            ", out);
    t.pass = 4;
    ctl_visit_options(visit, &t);
    t.pass = 3;
    t.first = true;
    ctl_visit_options(visit, &t);
    fputs(") skip=1 ;;\n"
          "            -*) ;;\n"
          "            *) if [[ -z $sub ]]; then sub=\"$w\"; else nargs=$((nargs + 1)); fi ;;\n"
          "        esac\n"
          "    done\n"
          "    case \"$prev\" in\n"
          "        --server)\n"
          "            [[ $sub == verify ]] && { COMPREPLY=(); return; }\n"
          "            COMPREPLY=($(compgen -W \"$(\"${COMP_WORDS[0]}\" config servers "
          "2>/dev/null)\" -- \"$cur\"))\n"
          "            return ;;\n"
          "        --attestation)\n"
          "            COMPREPLY=($(compgen -W \"verified failed expired none unsupported "
          "pending\" -- \"$cur\"))\n"
          "            return ;;\n",
          out);
    fprintf(out,
            "        %s)\n"
            "            COMPREPLY=($(compgen -f -- \"$cur\"))\n"
            "            return ;;\n",
            file_options);
    fputs("        ", out);
    t.pass = 3;
    t.first = true;
    ctl_visit_options(visit, &t);
    fputs(")\n"
          "            COMPREPLY=()\n"
          "            return ;;\n"
          "    esac\n"
          "    case \"$sub\" in\n",
          out);
    t.pass = 2;
    t.current = NULL;
    ctl_visit_options(visit, &t);
    if (t.current != NULL)
        fputs("\";;\n", out);
    fputs("    esac\n"
          "    if [[ $cur == -* ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$global_opts $opts\" -- \"$cur\"))\n"
          "        return\n"
          "    fi\n"
          "    if [[ -z $sub ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$commands\" -- \"$cur\"))\n"
          "        return\n"
          "    fi\n"
          "    local words=\"\"\n"
          "    case \"$sub\" in\n"
          "        help) ((nargs == 0)) && words=\"$commands\" ;;\n"
          "        device) ((nargs == 1)) && words=\"allow-reenroll\" ;;\n"
          "        verify) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n",
          out);
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        fprintf(out, "        %s) ((nargs == 0)) && words=\"%s\" ;;\n", actions[i].subcommand,
                actions[i].words);
    fputs("    esac\n"
          "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
          "}\n"
          "complete -F _vouchctl vouchctl\n",
          out);
}

int cmd_completion(struct ctl *ctl)
{
    if (strcmp(ctl->args[0], "bash") != 0)
        return ctl_usage_error("completion", "unknown shell '%s' (bash)", ctl->args[0]);
    print_bash(stdout);
    return CTL_EXIT_OK;
}
