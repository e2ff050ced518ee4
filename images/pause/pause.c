/*
 * The pod sandbox's process: holds the pod's namespaces, reaps the zombies reparented to it
 * (it is PID 1 when the pod shares its PID namespace), and exits 0 on SIGTERM or SIGINT.
 * Built static (`gcc -static`), so the image holds this one file.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

static void on_child(int sig) { (void)sig; }

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts("pause (elastic-jupyter local image)");
        return 0;
    }
    /* Not PID 1 (e.g. a test run on the host): still adopt and reap orphaned descendants. */
    if (getpid() != 1) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    struct sigaction stop = {.sa_handler = on_stop};
    struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
    sigemptyset(&stop.sa_mask);
    sigemptyset(&child.sa_mask);
    if (sigaction(SIGTERM, &stop, NULL) < 0 || sigaction(SIGINT, &stop, NULL) < 0 ||
        sigaction(SIGCHLD, &child, NULL) < 0) {
        perror("pause: sigaction");
        return 1;
    }
    /* The signals stay blocked except inside sigsuspend, so none arrives between the check of
     * stop_signal and the wait (pause() would sleep through a SIGTERM that came just before). */
    sigset_t handled, during_wait;
    sigemptyset(&handled);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGCHLD);
    sigprocmask(SIG_BLOCK, &handled, &during_wait);
    sigdelset(&during_wait, SIGTERM);
    sigdelset(&during_wait, SIGINT);
    sigdelset(&during_wait, SIGCHLD);
    while (!stop_signal) {
        sigsuspend(&during_wait);
        /* Reap every child that has exited; the others keep running. */
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
    }
    fprintf(stderr, "pause: shutting down on signal %d\n", (int)stop_signal);
    return 0;
}
