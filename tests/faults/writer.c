/*
 * The power-loss harness's own test subject: replaces DIR/data with new
 * contents by writing a temporary file and renaming it over, then prints
 * "done".
 *
 *   writer safe DIR    write, fsync the file, rename, fsync DIR: a power cut
 *                      leaves the old contents or the new ones
 *   writer unsafe DIR  write, rename, then fsync: a power cut can leave the
 *                      new name on a file whose data never reached the disk
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void check(int ok, const char *what) {
    if (!ok) {
        perror(what);
        _exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "safe") != 0 && strcmp(argv[1], "unsafe") != 0)) {
        fprintf(stderr, "usage: writer safe|unsafe DIR\n");
        return 2;
    }
    int safe = strcmp(argv[1], "safe") == 0;
    char tmp[4096], final[4096];
    snprintf(tmp, sizeof tmp, "%s/data.tmp", argv[2]);
    snprintf(final, sizeof final, "%s/data", argv[2]);
    /* Two writes, so that a torn or partial file is possible too. */
    char block[2048];
    memset(block, 'n', sizeof block);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    check(fd >= 0, "open");
    check(write(fd, block, sizeof block) == (ssize_t)sizeof block, "write");
    check(write(fd, block, sizeof block) == (ssize_t)sizeof block, "write");
    if (safe)
        check(fsync(fd) == 0, "fsync");
    check(rename(tmp, final) == 0, "rename");
    if (!safe)
        check(fsync(fd) == 0, "fsync");
    check(close(fd) == 0, "close");
    int dir = open(argv[2], O_RDONLY | O_DIRECTORY);
    check(dir >= 0, "open folder");
    check(fsync(dir) == 0, "fsync folder");
    check(close(dir) == 0, "close folder");
    printf("done\n");
    return 0;
}
