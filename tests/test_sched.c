/* test_sched.c - placeholder, being written. */
int main(void) { return 77; }
