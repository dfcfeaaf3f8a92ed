/* Unit tests of lib/atomic_file.c: a file replaced whole, with its mode from the start, and
 * nothing changed or left behind when a step fails. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"

struct folder {
    char path[64];
};

static void folder_new(struct folder *f)
{
    snprintf(f->path, sizeof(f->path), "/tmp/vouch-atomic-XXXXXX");
    assert_non_null(mkdtemp(f->path));
}

static char *folder_file(const struct folder *f, const char *name)
{
    size_t len = strlen(f->path) + strlen(name) + 2;
    char *out = malloc(len);
    assert_non_null(out);
    snprintf(out, len, "%s/%s", f->path, name);
    return out;
}

/* How many entries the folder holds (without . and ..). */
static int folder_count(const struct folder *f)
{
    DIR *d = opendir(f->path);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void folder_free(struct folder *f)
{
    DIR *d = opendir(f->path);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            char *p = folder_file(f, e->d_name);
            unlink(p);
            free(p);
        }
    }
    closedir(d);
    rmdir(f->path);
}

static void assert_file(const char *path, const char *text, mode_t mode)
{
    char buf[256] = "";
    FILE *in = fopen(path, "rb");
    assert_non_null(in);
    size_t n = fread(buf, 1, sizeof(buf) - 1, in);
    fclose(in);
    buf[n] = '\0';
    assert_string_equal(buf, text);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, mode);
}

static void test_replace(void **state)
{
    struct folder f;
    folder_new(&f);
    char *path = folder_file(&f, "push.key");
    FILE *old = fopen(path, "w");
    assert_non_null(old);
    fputs("old key\n", old);
    fclose(old);
    chmod(path, 0644);

    struct atomic_file file;
    char err[256];
    assert_true(atomic_file_prepare(&file, path, "new key\n", 8, 0600, err, sizeof(err)));
    assert_file(path, "old key\n", 0644); /* prepared: the target is still the old one */
    assert_int_equal(folder_count(&f), 2);
    assert_true(atomic_file_commit(&file, err, sizeof(err)));
    assert_file(path, "new key\n", 0600);
    assert_int_equal(folder_count(&f), 1);

    /* Aborted: the target stays, the temporary file goes. */
    assert_true(atomic_file_prepare(&file, path, "other\n", 6, 0600, err, sizeof(err)));
    atomic_file_abort(&file);
    assert_file(path, "new key\n", 0600);
    assert_int_equal(folder_count(&f), 1);
    free(path);
    folder_free(&f);
}

static void test_failures(void **state)
{
    struct folder f;
    folder_new(&f);
    struct atomic_file file;
    char err[256];
    char *missing = folder_file(&f, "no-such-folder/push.pem");
    assert_false(atomic_file_prepare(&file, missing, "x", 1, 0644, err, sizeof(err)));
    assert_non_null(strstr(err, missing));
    /* A folder in the target's place: the rename fails, nothing is left behind. */
    char *taken = folder_file(&f, "push.pem");
    assert_int_equal(mkdir(taken, 0700), 0);
    assert_true(atomic_file_prepare(&file, taken, "x", 1, 0644, err, sizeof(err)));
    assert_false(atomic_file_commit(&file, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot replace"));
    assert_int_equal(folder_count(&f), 1);
    rmdir(taken);
    free(missing);
    free(taken);
    folder_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
