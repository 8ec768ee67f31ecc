//! Every requirement of protocol-spec/PROTOCOL.md has a test, and every test
//! names a requirement that exists (§1.6).
//!
//! The spec tags each normative statement `[R-<section>.<n>]`. A server
//! requirement is covered by a test in `tests/conformance_*.rs` named
//! `r_<section>_<n>_<what>`, or by one that lists the ID in a
//! `/// Covers: R-…, R-…` doc line. A client requirement (not observable on
//! the server) is mapped in [`ELSEWHERE`] to the client test that checks it.
//! From both this test writes the table protocol-spec/REQUIREMENTS.md and
//! fails if the committed one differs; regenerate it with
//! `REQUIREMENTS_BLESS=1 cargo test --release --test conformance_requirements`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Requirements checked outside the conformance suite: (ID, who must obey
/// it, file, test function). The checker verifies that the function exists.
const ELSEWHERE: &[(&str, &str, &str, &str)] = &[
    (
        "R-14.3.7",
        "server",
        "tests/e2e_restore_crash.rs",
        "a_directory_restore_cut_by_a_server_crash_is_finished_at_restart",
    ),
    (
        "R-14.3.7",
        "server",
        "src/server/store/restore_intent/tests.rs",
        "a_restore_cut_at_any_entry_is_finished_at_the_next_open",
    ),
    (
        "R-14.3.7",
        "client",
        "src/client/history.rs",
        "a_restore_cut_by_a_lost_connection_says_it_may_be_partly_done_and_what_to_run",
    ),
    (
        "R-6.2.3",
        "client",
        "tests/e2e_unsyncable_move.rs",
        "a_move_to_an_unsyncable_path_deletes_nothing_and_moves_on_as_a_rename",
    ),
    (
        "R-6.2.3",
        "client",
        "tests/e2e_unsyncable_move.rs",
        "an_edit_made_elsewhere_to_the_old_path_meanwhile_is_kept",
    ),
    (
        "R-6.2.3",
        "client",
        "src/client/plan/stranded/tests.rs",
        "a_directory_moved_too_deep_holds_everything_below_it",
    ),
    (
        "R-15.2.6",
        "client",
        "tests/e2e_exec.rs",
        "an_edit_from_elsewhere_keeps_this_devices_read_and_write_bits",
    ),
    (
        "R-10.12",
        "server",
        "tests/e2e_server_hand_kinds.rs",
        "kind_changes_and_an_older_backup_by_hand_lose_nothing",
    ),
    (
        "R-10.12",
        "server",
        "src/server/store/recover/hand_tests.rs",
        "a_directory_replaced_by_a_file_is_lost_not_deleted",
    ),
    (
        "R-10.12",
        "server",
        "src/server/store/recover/hand_tests.rs",
        "a_file_replaced_by_a_directory_is_lost_and_the_directory_set_aside",
    ),
    (
        "R-10.12",
        "server",
        "src/server/store/recover/hand_tests.rs",
        "no_newest_content_is_lost_to_hand_changes",
    ),
    (
        "R-10.13",
        "server",
        "src/server/store/recover/hand_tests.rs",
        "an_older_backup_copied_back_does_not_roll_back",
    ),
    (
        "R-10.13",
        "server",
        "tests/e2e_server_hand_kinds.rs",
        "kind_changes_and_an_older_backup_by_hand_lose_nothing",
    ),
    (
        "R-10.13",
        "server",
        "src/server/store/recover/hand_tests.rs",
        "no_newest_content_is_lost_to_hand_changes",
    ),
    (
        "R-10.4",
        "server",
        "tests/e2e_server_hand_edits.rs",
        "hand_edits_while_the_server_is_stopped_reach_the_devices",
    ),
    (
        "R-10.4",
        "server",
        "src/server/store/recover/tests.rs",
        "a_clean_start_journals_hand_edits_and_keeps_a_removed_file_listed",
    ),
    (
        "R-10.5",
        "server",
        "tests/e2e_server_hand_edits.rs",
        "hand_edits_while_the_server_is_stopped_reach_the_devices",
    ),
    (
        "R-10.5",
        "server",
        "src/server/store/recover/tests.rs",
        "a_file_damaged_in_place_fails_its_fetch_and_is_served_no_more",
    ),
    (
        "R-10.6",
        "server",
        "tests/e2e_server_hand_edits.rs",
        "a_byte_changed_while_the_server_runs_is_found_at_the_fetch_and_journaled",
    ),
    (
        "R-10.6",
        "server",
        "tests/e2e_damaged_server_copy.rs",
        "a_damaged_server_copy_is_held_back_not_fetched_at_every_pull",
    ),
    (
        "R-10.7",
        "server",
        "tests/e2e_server_hand_edits.rs",
        "hand_edits_while_the_server_is_stopped_reach_the_devices",
    ),
    (
        "R-10.14",
        "server",
        "tests/e2e_server_hand_edits.rs",
        "hand_edits_while_the_server_runs_meet_the_next_push_as_a_conflict",
    ),
    (
        "R-10.14",
        "server",
        "src/server/store/live/tests.rs",
        "random_hand_operations_interleaved_with_pushes_lose_no_byte",
    ),
    (
        "R-10.14",
        "server",
        "src/server/store/live/tests.rs",
        "removals_and_renames_leave_what_a_hand_made",
    ),
    (
        "R-10.8",
        "server",
        "src/protocol/lost.rs",
        "round_trips_and_refusals",
    ),
    (
        "R-10.9",
        "server",
        "tests/e2e_lost_server_copy.rs",
        "a_running_device_puts_the_lost_and_the_damaged_copy_back",
    ),
    (
        "R-10.10",
        "server",
        "tests/e2e_lost_server_copy.rs",
        "a_running_device_puts_the_lost_and_the_damaged_copy_back",
    ),
    (
        "R-10.10",
        "server",
        "src/server/store/lost.rs",
        "a_recovery_is_exactly_lost_and_equal",
    ),
    (
        "R-10.10",
        "server",
        "tests/e2e_lost_server_copy.rs",
        "a_device_with_an_edit_of_the_lost_file_is_not_taken_for_the_lost_copy",
    ),
    (
        "R-10.11",
        "client",
        "tests/e2e_lost_server_copy.rs",
        "a_once_run_puts_the_lost_copies_back",
    ),
    (
        "R-10.11",
        "client",
        "src/client/lost.rs",
        "never_a_yes_for_another_version_hash_or_size",
    ),
    (
        "R-10.11",
        "client",
        "tests/e2e_idle_user.rs",
        "an_idle_pair_only_pulls_and_its_worker_stays_retired",
    ),
    (
        "R-4.4.4",
        "server",
        "tests/e2e_idle_user.rs",
        "a_file_found_lost_while_the_server_runs_comes_back_from_a_running_device",
    ),
    (
        "R-5.2.20",
        "client",
        "tests/e2e_dir_rename_whole.rs",
        "ignored_files_symlinks_and_the_mode_travel_with_a_renamed_directory",
    ),
    (
        "R-5.2.20",
        "client",
        "tests/e2e_dir_rename_whole.rs",
        "a_nested_folder_of_another_user_moves_whole_and_that_user_loses_nothing",
    ),
    (
        "R-5.2.20",
        "client",
        "tests/e2e_dir_rename_whole.rs",
        "renamed_deeper_chained_swapped_nested_and_edited_directories_each_move_whole",
    ),
    (
        "R-5.2.20",
        "client",
        "tests/e2e_dir_rename_whole.rs",
        "a_drive_mounted_inside_a_renamed_directory_moves_with_it_and_keeps_its_files",
    ),
    (
        "R-5.2.20",
        "client",
        "src/client/applier/whole_dirs/tests.rs",
        "random_renames_of_a_tree_are_found_exactly",
    ),
    (
        "R-5.2.20",
        "client",
        "src/client/applier/whole_dirs/tests.rs",
        "a_rename_with_an_edit_an_addition_and_a_removal_elsewhere_still_moves_whole",
    ),
    (
        "R-5.2.19",
        "client",
        "tests/e2e_rename_placed.rs",
        "a_directory_renamed_elsewhere_is_renamed_here_not_copied",
    ),
    (
        "R-5.2.19",
        "client",
        "src/client/applier/crash_tests.rs",
        "a_crash_at_any_step_of_a_rename_placed_by_rename_loses_nothing",
    ),
    (
        "R-5.2.19",
        "client",
        "src/client/applier/taken.rs",
        "a_stashed_file_is_placed_only_if_untouched_since_it_was_set_aside",
    ),
    (
        "R-5.2.19",
        "client",
        "tests/e2e_rename_killed.rs",
        "a_receiver_killed_during_a_directory_rename_fetches_nothing_again",
    ),
    (
        "R-5.2.21",
        "client",
        "tests/e2e_killed_mid_pull.rs",
        "a_deletion_made_while_a_device_was_killed_mid_pull_stands",
    ),
    (
        "R-5.2.21",
        "client",
        "tests/e2e_killed_mid_pull.rs",
        "random_kills_mid_pull_undo_nothing_and_lose_no_edit",
    ),
    (
        "R-5.2.21",
        "client",
        "src/client/applier/placement_crash_tests.rs",
        "a_crash_at_any_step_of_placing_leaves_nothing_the_other_devices_deletion_keeps",
    ),
    (
        "R-5.2.21",
        "client",
        "src/client/applier/placement_crash_tests.rs",
        "an_edit_made_to_a_placed_file_before_the_restart_is_kept_and_pushed",
    ),
    (
        "R-5.2.18",
        "client",
        "tests/e2e_copy_edit_delete.rs",
        "a_copy_edited_then_its_source_removed_sends_about_the_edit",
    ),
    (
        "R-5.2.18",
        "client",
        "src/client/applier/donors/tests.rs",
        "a_crash_leaves_the_folder_clean_and_the_next_start_removes_the_donors",
    ),
    (
        "R-5.2.18",
        "client",
        "src/client/applier/donors/tests.rs",
        "donors_hold_exactly_what_the_reply_deleted_within_the_budget",
    ),
    (
        "R-9.2.3",
        "client",
        "tests/e2e_lost_push.rs",
        "a_push_the_server_never_answers_is_sent_again_after_the_probe",
    ),
    (
        "R-9.2.4",
        "client",
        "tests/e2e_lost_pull.rs",
        "a_pull_the_server_never_answers_is_pulled_again_after_the_probe",
    ),
    (
        "R-5.4.11",
        "client",
        "tests/e2e_copy_edit_delete.rs",
        "a_copy_edited_then_its_source_removed_sends_about_the_edit",
    ),
    (
        "R-13.8.4",
        "client",
        "tests/e2e_stream.rs",
        "an_append_during_the_upload_is_never_stored_as_a_mix",
    ),
    (
        "R-13.8.4",
        "client",
        "tests/e2e_stream.rs",
        "a_truncation_during_the_upload_is_never_stored_as_a_mix",
    ),
    (
        "R-13.8.4",
        "client",
        "tests/e2e_stream.rs",
        "a_same_size_rewrite_with_the_old_mtime_during_the_upload_is_never_stored_as_a_mix",
    ),
    (
        "R-13.8.6",
        "client",
        "tests/e2e_stream.rs",
        "a_version_5_server_gets_the_file_hashed_first",
    ),
    (
        "R-4.6.16",
        "client",
        "tests/e2e_device_in_use.rs",
        "a_clone_running_as_the_same_device_is_refused_and_changes_nothing",
    ),
    (
        "R-5.7.1",
        "client",
        "tests/e2e_exec_race.rs",
        "a_change_here_racing_a_download_of_the_same_file_keeps_both",
    ),
    (
        "R-5.7.1",
        "client",
        "tests/e2e_exec_race.rs",
        "randomized_changes_racing_downloads_keep_both",
    ),
    (
        "R-5.7.1",
        "client",
        "src/client/applier/mode_tests.rs",
        "a_change_here_racing_the_placement_of_a_download_is_kept",
    ),
    (
        "R-5.7.2",
        "client",
        "tests/e2e_moved_out.rs",
        "new_directories_are_never_made_in_a_directory_moved_out",
    ),
    (
        "R-5.7.2",
        "client",
        "tests/e2e_moved_out.rs",
        "downloads_are_never_placed_in_a_directory_moved_out",
    ),
    (
        "R-5.7.2",
        "client",
        "src/client/applier/moved_out_tests.rs",
        "a_replaced_file_goes_back_to_a_directory_moved_out",
    ),
    (
        "R-5.7.2",
        "client",
        "src/client/applier/moved_out_tests.rs",
        "a_synced_file_deleted_from_a_directory_moved_out_stays_there",
    ),
    (
        "R-5.7.2",
        "client",
        "src/client/applier/moved_out_tests.rs",
        "a_file_written_over_a_swapped_in_download_in_a_directory_moved_out_stays_there",
    ),
    (
        "R-15.2.7",
        "client",
        "src/client/applier/mode_tests.rs",
        "the_servers_bit_goes_only_to_the_file_judged_inside_the_folder",
    ),
    (
        "R-5.4.12",
        "client",
        "src/client/push.rs",
        "a_conflict_answer_for_a_file_gone_here_pushes_its_deletion_or_move",
    ),
    (
        "R-5.7.3",
        "client",
        "tests/e2e_hot_folder.rs",
        "new_files_consumed_as_they_arrive_reach_every_device",
    ),
    (
        "R-5.7.4",
        "client",
        "tests/e2e_held_open.rs",
        "a_log_a_program_appends_to_keeps_its_name_until_it_closes",
    ),
    (
        "R-5.7.4",
        "client",
        "tests/e2e_held_open.rs",
        "a_sqlite_database_in_use_is_never_split_from_its_wal",
    ),
    (
        "R-5.7.4",
        "client",
        "src/client/applier/race_tests.rs",
        "a_writer_opening_before_the_placement_keeps_the_name",
    ),
    (
        "R-5.7.4",
        "client",
        "src/client/held_open.rs",
        "a_writer_is_seen_and_a_reader_or_no_file_is_not",
    ),
    (
        "R-5.7.3",
        "client",
        "tests/e2e_hot_folder.rs",
        "renamed_files_consumed_as_they_arrive_reach_every_device",
    ),
    (
        "R-5.7.3",
        "client",
        "src/client/applier/placed_tests.rs",
        "a_download_consumed_right_after_its_placement_is_pushed",
    ),
    (
        "R-5.7.3",
        "client",
        "src/client/applier/placed_tests.rs",
        "a_remote_rename_consumed_right_after_its_placement_is_pushed",
    ),
    (
        "R-5.7.3",
        "client",
        "src/client/applier/placed_tests.rs",
        "a_mode_change_of_a_file_deleted_meanwhile_pushes_the_deletion",
    ),
    (
        "R-4.6.12",
        "client",
        "tests/e2e_copied_folder.rs",
        "a_copy_runs_as_a_new_device_and_concurrent_edits_are_both_kept",
    ),
    (
        "R-4.6.12",
        "client",
        "tests/e2e_copied_folder.rs",
        "a_copy_of_a_user_with_a_join_code_stops_with_one_line_and_changes_nothing",
    ),
    (
        "R-4.6.12",
        "client",
        "tests/e2e_copied_folder.rs",
        "a_folder_moved_within_its_file_system_keeps_its_device",
    ),
    (
        "R-4.6.12",
        "client",
        "src/client/origin.rs",
        "the_rule_table",
    ),
    (
        "R-5.6.8",
        "client",
        "tests/e2e_disk_full.rs",
        "a_download_that_does_not_fit_is_held_back_and_the_rest_goes_on",
    ),
    (
        "R-5.6.8",
        "client",
        "tests/e2e_disk_full.rs",
        "an_upload_the_server_has_no_room_for_waits_and_the_other_edits_go",
    ),
    (
        "R-5.6.8",
        "client",
        "src/client/schedule/holdback/tests.rs",
        "the_delay_doubles_from_5_s_to_5_min",
    ),
    (
        "R-5.6.8",
        "client",
        "src/client/schedule/tests.rs",
        "connections_that_keep_ending_quickly_make_the_backoff_grow",
    ),
    (
        "R-13.3.5",
        "server",
        "tests/server_disk_full.rs",
        "a_delta_upload_that_does_not_fit_is_refused_and_the_connection_stays_open",
    ),
    (
        "R-13.7.5",
        "client",
        "src/client/delta_push.rs",
        "r_13_7_5_refusals_step_down_and_never_up",
    ),
    (
        "R-13.7.5",
        "client",
        "tests/e2e_list_delta.rs",
        "an_edit_goes_up_with_its_list_as_a_delta_and_an_older_server_gets_the_whole_list",
    ),
    (
        "R-7.2.5",
        "client",
        "src/client/plan/resolve/offline_tests.rs",
        "offline_changes_are_pushed_as_made",
    ),
    (
        "R-7.2.5",
        "client",
        "tests/e2e_offline_session.rs",
        "random_offline_sessions_end_as_made",
    ),
    (
        "R-7.2.6",
        "client",
        "tests/e2e_offline_session.rs",
        "rm_rf_and_a_directory_rename_with_a_conflicting_edit_stay_as_made",
    ),
    (
        "R-7.2.6",
        "client",
        "src/client/index.rs",
        "a_rewound_cursor_keeps_what_was_seen",
    ),
    (
        "R-5.6.6",
        "client",
        "tests/e2e_mass_removal.rs",
        "removals_on_purpose_arrive_whole_and_a_few_are_not_held",
    ),
    (
        "R-5.6.6",
        "client",
        "src/client/schedule/removal.rs",
        "sent_only_when_settled",
    ),
    (
        "R-5.6.9",
        "client",
        "tests/e2e_mounts.rs",
        "a_disk_unmounted_while_the_client_runs_deletes_nothing",
    ),
    (
        "R-5.6.9",
        "client",
        "tests/e2e_mounts.rs",
        "a_disk_not_mounted_at_start_deletes_nothing",
    ),
    (
        "R-5.6.9",
        "client",
        "src/client/mounts/tests.rs",
        "removed_exactly_when_missing_from_its_own_file_system",
    ),
    (
        "R-5.6.9",
        "client",
        "src/client/mounts/tests.rs",
        "a_file_system_mounted_again_under_another_number_is_still_its_own",
    ),
    (
        "R-5.6.9",
        "client",
        "tests/e2e_mount_swap.rs",
        "another_empty_drive_at_start_deletes_nothing_and_gets_the_files",
    ),
    (
        "R-5.6.9",
        "client",
        "tests/e2e_mount_swap.rs",
        "another_empty_drive_while_running_deletes_nothing_and_gets_the_files",
    ),
    (
        "R-5.6.9",
        "client",
        "tests/e2e_mount_swap.rs",
        "an_older_drive_at_start_overwrites_nothing_and_keeps_both",
    ),
    (
        "R-5.6.9",
        "client",
        "tests/e2e_mount_swap.rs",
        "an_older_drive_while_running_overwrites_nothing_and_keeps_both",
    ),
    (
        "R-5.6.9",
        "client",
        "tests/e2e_mount_over.rs",
        "files_hidden_by_a_drive_plugged_back_in_are_not_deleted_anywhere_and_land_on_it",
    ),
    (
        "R-5.6.12",
        "client",
        "tests/e2e_mount_inside.rs",
        "every_server_change_reaches_a_tmpfs_mounted_inside_the_folder",
    ),
    (
        "R-5.6.12",
        "client",
        "tests/e2e_mount_inside.rs",
        "every_server_change_reaches_a_bind_mount_of_the_same_disk",
    ),
    (
        "R-5.6.12",
        "client",
        "tests/e2e_mount_inside.rs",
        "a_read_only_drive_is_not_fetched_for_at_every_pull_and_once_exits_3",
    ),
    (
        "R-5.6.13",
        "client",
        "tests/e2e_disk_full_removals.rs",
        "deletions_renames_and_edits_go_on_a_disk_without_free_inodes",
    ),
    (
        "R-5.6.13",
        "client",
        "tests/e2e_disk_full_removals.rs",
        "deletions_renames_and_edits_go_on_a_disk_without_free_bytes",
    ),
    (
        "R-5.6.13",
        "client",
        "src/client/spare.rs",
        "a_step_short_of_room_is_run_again_once_after_the_spare_is_given_up",
    ),
    (
        "R-5.6.7",
        "client",
        "tests/e2e_mass_removal.rs",
        "a_folder_emptied_slowly_deletes_nothing",
    ),
    (
        "R-5.6.7",
        "client",
        "tests/e2e_client.rs",
        "an_emptied_folder_is_not_a_mass_deletion",
    ),
    (
        "R-5.6.7",
        "client",
        "tests/e2e_mass_removal.rs",
        "rm_rf_star_leaving_dot_names_deletes_nothing",
    ),
    (
        "R-5.6.10",
        "client",
        "tests/e2e_symlink_blocked.rs",
        "server_files_behind_a_symlink_or_special_file_are_held_back_listed_and_arrive_later",
    ),
    (
        "R-5.6.10",
        "client",
        "src/client/applier/tests.rs",
        "symlinked_directories_are_never_written_through",
    ),
    (
        "R-5.6.11",
        "client",
        "tests/e2e_replaced_by_special.rs",
        "a_file_or_directory_replaced_by_a_symlink_fifo_or_socket_is_deleted_everywhere",
    ),
    (
        "R-5.6.11",
        "client",
        "src/client/scanner/tests.rs",
        "a_file_or_directory_replaced_by_a_symlink_or_special_file_is_deleted",
    ),
    (
        "R-7.2.7",
        "client",
        "tests/e2e_symlink_blocked.rs",
        "removing_a_directory_keeps_the_other_devices_files_a_symlink_hid",
    ),
    (
        "R-7.2.7",
        "client",
        "src/client/index.rs",
        "a_remove_dir_cursor_stays_below_what_is_held_back_under_the_directory",
    ),
    (
        "R-5.6.5",
        "client",
        "tests/e2e_ignore_blocked.rs",
        "a_server_file_where_an_ignored_directory_is_is_held_back_and_the_cursor_passes_it",
    ),
    (
        "R-5.6.5",
        "client",
        "src/client/applier/tests.rs",
        "a_server_file_where_an_ignored_directory_is_is_held_back_not_waited_for",
    ),
    (
        "R-4.5.9",
        "client",
        "tests/e2e_status.rs",
        "status_shows_why_a_stopped_client_stopped",
    ),
    (
        "R-4.5.10",
        "client",
        "tests/e2e_unknown_user.rs",
        "joined_clients_outlive_a_server_on_a_wrong_data_dir",
    ),
    (
        "R-4.5.11",
        "client",
        "tests/e2e_restore_late.rs",
        "a_device_that_joined_after_the_backup_is_told_how_to_join_again",
    ),
    (
        "R-5.8.4",
        "client",
        "tests/e2e_restore_late.rs",
        "a_late_device_does_not_undo_what_was_done_after_the_restore",
    ),
    (
        "R-5.8.4",
        "client",
        "tests/e2e_restore_late.rs",
        "a_late_device_follows_renames_made_after_the_restore",
    ),
    (
        "R-5.8.4",
        "client",
        "src/client/pull/reconcile/known_tests.rs",
        "randomized_restores_push_again_only_what_the_server_never_held",
    ),
    (
        "R-14.1.2",
        "server",
        "src/server/store/history.rs",
        "identical_contents_are_stored_once",
    ),
    (
        "R-14.1.3",
        "server",
        "src/server/store/live/tests.rs",
        "an_edit_in_place_never_passes_for_a_kept_version",
    ),
    (
        "R-14.1.3",
        "server",
        "src/server/store/live/tests.rs",
        "a_file_replaced_or_edited_by_hand_is_kept_and_versions_hold_their_hash",
    ),
    (
        "R-14.1.4",
        "server",
        "src/server/store/live/family_tests.rs",
        "an_edit_that_keeps_size_and_mtime_is_kept_when_a_push_displaces_it",
    ),
    (
        "R-14.1.4",
        "server",
        "src/server/store/live/family_tests.rs",
        "hand_changes_running_and_stopped_lose_no_byte",
    ),
    (
        "R-14.1.4",
        "server",
        "src/server/store/live/known_tests.rs",
        "every_hand_change_that_moves_only_the_ctime_is_read_and_kept",
    ),
    (
        "R-14.1.4",
        "server",
        "src/server/store/live/known_tests.rs",
        "a_file_as_the_server_placed_it_is_not_read_when_a_push_displaces_it",
    ),
    (
        "R-14.1.4",
        "server",
        "src/server/store/live/known_tests.rs",
        "where_a_change_can_keep_the_ctime_every_displaced_file_is_read",
    ),
    (
        "R-14.1.4",
        "server",
        "src/server/store/live/known_tests.rs",
        "files_a_cut_restore_placed_are_read_when_changed_and_trusted_only_as_placed",
    ),
    (
        "R-14.4.1",
        "server",
        "tests/e2e_versions.rs",
        "versions_expire_by_age_and_by_space",
    ),
    (
        "R-5.2.15",
        "client",
        "src/client/applier/echo_tests.rs",
        "the_echo_of_own_pushes_changes_nothing",
    ),
    (
        "R-5.2.15",
        "client",
        "src/client/applier/echo_tests.rs",
        "replies_older_than_the_index_change_nothing",
    ),
    (
        "R-5.2.15",
        "client",
        "src/client/applier/echo_tests.rs",
        "a_deletion_superseded_at_its_directory_still_removes_what_was_below_it",
    ),
    (
        "R-5.2.15",
        "client",
        "tests/e2e_rename_blocked_edit.rs",
        "a_blocked_directory_move_with_an_edit_inside_ends_as_the_server",
    ),
    (
        "R-5.2.16",
        "client",
        "src/client/applier/echo_tests.rs",
        "a_path_deleted_then_remade_with_the_indexed_content_keeps_its_file",
    ),
    (
        "R-5.2.16",
        "client",
        "tests/planner_model/regressions.rs",
        "regression_long_1",
    ),
    (
        "R-5.2.17",
        "client",
        "src/client/applier/follow_tests.rs",
        "local_changes_follow_a_directory_rename_whatever_the_mix",
    ),
    (
        "R-5.2.17",
        "client",
        "tests/e2e_rename_follow.rs",
        "an_edit_and_a_deletion_made_while_stopped_follow_a_rename_elsewhere",
    ),
    (
        "R-14.4.2",
        "server",
        "tests/e2e_versions.rs",
        "the_space_limit_holds_between_periodic_reaps",
    ),
    (
        "R-14.4.3",
        "server",
        "src/server/store/versions.rs",
        "a_removed_directory_stays_while_a_file_of_it_does",
    ),
    (
        "R-14.4.3",
        "server",
        "tests/e2e_versions.rs",
        "a_partly_expired_directory_is_restored_with_what_is_left",
    ),
    (
        "R-15.1.2",
        "client",
        "tests/e2e_exec.rs",
        "against_a_server_without_version_3_contents_sync_and_no_bit_is_lost",
    ),
    (
        "R-15.2.3",
        "client",
        "tests/e2e_exec.rs",
        "the_executable_bit_travels_both_ways_with_and_without_content",
    ),
    (
        "R-15.3.3",
        "client",
        "tests/e2e_exec.rs",
        "the_executable_bit_travels_both_ways_with_and_without_content",
    ),
    (
        "R-15.3.3",
        "client",
        "tests/e2e_exec.rs",
        "a_conflict_copy_keeps_its_devices_bit",
    ),
    (
        "R-15.3.3",
        "client",
        "tests/e2e_exec_diverge.rs",
        "a_rename_and_a_chmod_at_once_send_the_bit",
    ),
    (
        "R-15.2.4",
        "client",
        "tests/e2e_exec_diverge.rs",
        "a_chmod_racing_a_content_edit_elsewhere_keeps_both",
    ),
    (
        "R-15.2.4",
        "client",
        "tests/e2e_exec_diverge.rs",
        "a_chmod_made_while_the_other_device_is_stopped_reaches_its_edit_and_its_rename",
    ),
    (
        "R-7.2.4",
        "client",
        "tests/e2e_exec_lost.rs",
        "a_rename_and_edit_made_while_stopped_takes_the_chmod_made_elsewhere",
    ),
    (
        "R-7.2.4",
        "client",
        "tests/e2e_inode_reuse.rs",
        "a_new_file_on_a_deleted_files_inode_is_a_delete_and_a_new_file",
    ),
    (
        "R-7.2.4",
        "client",
        "tests/e2e_inode_reuse.rs",
        "a_random_mix_of_moves_and_deletions_with_new_files_ends_by_content",
    ),
    (
        "R-7.2.4",
        "client",
        "tests/e2e_rename_fresh.rs",
        "files_moved_and_changed_right_before_a_start_are_renames_keeping_others_changes",
    ),
    (
        "R-7.2.9",
        "client",
        "tests/e2e_rename_swap.rs",
        "swaps_and_cycles_go_as_renames_keeping_an_edit_made_elsewhere",
    ),
    (
        "R-7.2.9",
        "client",
        "tests/planner_properties.rs",
        "swaps_and_cycles_of_any_length_are_renames_only",
    ),
    (
        "R-7.2.9",
        "client",
        "src/client/plan/swaps/tests.rs",
        "files_moved_into_a_new_directory_from_one_that_stays_are_file_renames",
    ),
    (
        "R-7.2.9",
        "client",
        "src/client/plan/swaps/tests.rs",
        "files_swapped_between_directories_that_keep_their_subdirectories_are_file_renames",
    ),
    (
        "R-15.2.5",
        "client",
        "tests/e2e_exec_lost.rs",
        "a_chmod_made_while_stopped_follows_a_rename_elsewhere_and_yields_to_a_delete",
    ),
    (
        "R-15.2.5",
        "client",
        "tests/e2e_exec_lost.rs",
        "a_chmod_racing_a_rename_elsewhere_reaches_the_new_name",
    ),
    (
        "R-15.3.5",
        "both",
        "tests/e2e_exec_lost.rs",
        "a_rename_and_edit_made_while_stopped_takes_the_chmod_made_elsewhere",
    ),
    (
        "R-15.2.4",
        "client",
        "tests/e2e_exec_property.rs",
        "random_chmods_edits_renames_and_restarts_end_with_equal_bits_everywhere",
    ),
    (
        "R-12.1.1",
        "both",
        "src/tls/stream/tests.rs",
        "handshake_then_both_directions",
    ),
    (
        "R-12.1.1",
        "both",
        "src/tls/config.rs",
        "tls13_only_no_tickets_no_client_certificates",
    ),
    (
        "R-12.1.2",
        "both",
        "src/tls/stream/tests.rs",
        "handshake_then_both_directions",
    ),
    (
        "R-12.1.2",
        "server",
        "tests/tls_hostile.rs",
        "a_client_hello_without_our_alpn_gets_no_application_protocol",
    ),
    (
        "R-12.1.3",
        "server",
        "src/tls/config.rs",
        "tls13_only_no_tickets_no_client_certificates",
    ),
    (
        "R-12.1.4",
        "both",
        "src/tls/config.rs",
        "tls13_only_no_tickets_no_client_certificates",
    ),
    (
        "R-12.2.1",
        "server",
        "tests/e2e_tls.rs",
        "sync_over_tls_records_the_fingerprint_on_first_use",
    ),
    (
        "R-12.2.1",
        "server",
        "src/tls/identity.rs",
        "made_once_then_loaded_with_the_same_fingerprint",
    ),
    (
        "R-12.2.2",
        "server",
        "tests/e2e_tls.rs",
        "a_certificate_from_elsewhere_and_a_ca_are_honoured",
    ),
    (
        "R-12.2.2",
        "server",
        "src/server/security.rs",
        "reload_swaps_the_certificate_and_keeps_it_on_bad_files",
    ),
    (
        "R-12.2.3",
        "client",
        "tests/e2e_tls.rs",
        "sync_over_tls_records_the_fingerprint_on_first_use",
    ),
    (
        "R-12.2.3",
        "client",
        "tests/e2e_tls.rs",
        "a_pinned_fingerprint_is_required_from_the_first_connection",
    ),
    (
        "R-12.2.3",
        "client",
        "tests/e2e_tls.rs",
        "another_certificate_in_the_middle_is_refused_and_nothing_is_lost",
    ),
    (
        "R-12.2.4",
        "client",
        "tests/e2e_tls.rs",
        "a_pinned_fingerprint_is_required_from_the_first_connection",
    ),
    (
        "R-12.2.5",
        "client",
        "tests/e2e_tls.rs",
        "a_certificate_from_elsewhere_and_a_ca_are_honoured",
    ),
    (
        "R-12.2.6",
        "client",
        "tests/e2e_tls.rs",
        "a_folder_that_trusts_a_tls_server_refuses_plaintext_and_sends_nothing",
    ),
    (
        "R-12.3.1",
        "client",
        "src/client/secure.rs",
        "the_sni_carries_the_routing_key_of_a_known_user",
    ),
    (
        "R-12.3.2",
        "both",
        "src/tls/routing.rs",
        "sni_is_a_dns_name_that_hides_the_id",
    ),
    (
        "R-12.3.3",
        "both",
        "src/tls/routing.rs",
        "sni_is_a_dns_name_that_hides_the_id",
    ),
    (
        "R-12.4.1",
        "both",
        "tests/e2e_tls.rs",
        "plaintext_on_one_side_only_gets_one_clear_line_not_a_hang",
    ),
    (
        "R-12.4.2",
        "server",
        "tests/e2e_tls.rs",
        "garbage_and_stalled_handshakes_are_closed_and_the_server_serves_on",
    ),
    (
        "R-12.4.3",
        "server",
        "tests/tls_hostile.rs",
        "fifteen_thousand_half_open_tls_handshakes_are_freed_and_others_served",
    ),
    (
        "R-12.4.4",
        "client",
        "tests/e2e_tls.rs",
        "another_certificate_in_the_middle_is_refused_and_nothing_is_lost",
    ),
    (
        "R-12.4.5",
        "client",
        "src/client/secure.rs",
        "a_busy_server_is_a_refusal_to_retry_not_a_plaintext_server",
    ),
    (
        "R-13.1.1",
        "codec",
        "tests/delta_codec.rs",
        "versions_select_the_kinds",
    ),
    (
        "R-13.4.5",
        "client",
        "src/client/delta_fetch.rs",
        "hostile_lists_and_chunks_are_errors_and_leave_nothing_visible",
    ),
    (
        "R-13.5.4",
        "client",
        "tests/e2e_resume.rs",
        "a_download_cut_by_killing_the_client_resumes_with_the_rest",
    ),
    (
        "R-13.5.4",
        "client",
        "tests/e2e_resume.rs",
        "a_download_cut_by_killing_the_server_resumes_with_the_rest",
    ),
    (
        "R-13.5.4",
        "client",
        "src/client/fetch_partial.rs",
        "a_cut_fetch_leaves_what_a_resume_takes_and_nothing_else",
    ),
    (
        "R-13.5.2",
        "client",
        "tests/e2e_resume.rs",
        "a_download_cut_by_killing_the_client_resumes_with_the_rest",
    ),
    (
        "R-13.3.4",
        "client",
        "src/client/delta_push.rs",
        "r_13_3_4_small_files_and_old_servers_get_whole_files",
    ),
    (
        "R-4.5.3",
        "client",
        "tests/conformance_client.rs",
        "r_4_5_6_the_client_does_not_retry_an_unknown_client",
    ),
    (
        "R-5.2.11",
        "client",
        "src/client/applier/tests.rs",
        "full_listing_deletes_what_it_does_not_list",
    ),
    (
        "R-5.2.11",
        "client",
        "src/client/applier/tests.rs",
        "locally_deleted_file_is_not_resurrected_by_an_old_listing",
    ),
    (
        "R-5.2.10",
        "client",
        "src/client/applier/tests.rs",
        "edit_during_download_is_kept_aside",
    ),
    (
        "R-6.3.3",
        "client",
        "src/client/fsutil.rs",
        "check_path_never_follows_symlinks",
    ),
    (
        "R-6.3.3",
        "client",
        "src/client/applier/tests.rs",
        "symlinked_directories_are_never_written_through",
    ),
    (
        "R-7.2.1",
        "client",
        "src/client/push.rs",
        "acks_update_the_index",
    ),
    (
        "R-10.2",
        "client",
        "tests/e2e_client.rs",
        "clients_ride_out_a_server_restart",
    ),
    (
        "R-5.5.3",
        "server",
        "tests/server_disk_full.rs",
        "disk_full_fails_the_push_and_keeps_the_old_version",
    ),
    (
        "R-3.4.8",
        "server",
        "tests/conformance_server.rs",
        "pong_keeps_request_order_behind_a_pipelined_pull",
    ),
    (
        "R-3.4.8",
        "server",
        "tests/conformance_server.rs",
        "pong_never_interleaves_a_slow_fetch_reply",
    ),
    (
        "R-4.3.5",
        "server",
        "tests/conformance_server.rs",
        "ping_during_an_upload_is_answered_and_the_upload_goes_on",
    ),
    (
        "R-3.3.5",
        "server",
        "tests/conformance_server.rs",
        "closing_errors_carry_the_bad_frames_request_id",
    ),
    (
        "R-1.4.1.1",
        "server",
        "tests/conformance_server.rs",
        "an_unknown_error_code_decodes_and_a_client_sent_error_is_wrong_phase",
    ),
    (
        "R-3.2.1",
        "server",
        "tests/conformance_server.rs",
        "an_unknown_error_code_decodes_and_a_client_sent_error_is_wrong_phase",
    ),
    (
        "R-5.4.2",
        "server",
        "tests/conformance_server.rs",
        "a_remove_dir_that_keeps_a_newer_file_is_one_change_and_notifies",
    ),
    (
        "R-4.4.1",
        "server",
        "tests/conformance_server.rs",
        "other_push_kinds_notify_exactly_when_the_tree_changed",
    ),
    (
        "R-7.1.3",
        "server",
        "tests/conformance_server.rs",
        "deleted_entries_keep_their_removal_number_across_restart_and_compaction",
    ),
    (
        "R-7.2.2",
        "server",
        "tests/conformance_server.rs",
        "a_devices_own_earlier_pushes_never_make_its_push_stale",
    ),
    (
        "R-7.4.1.1",
        "server",
        "tests/conformance_server.rs",
        "one_pushed_subtree_below_a_file_gets_one_conflict_directory",
    ),
    (
        "R-7.4.1.2",
        "server",
        "tests/conformance_server.rs",
        "one_pushed_subtree_below_a_file_gets_one_conflict_directory",
    ),
    (
        "R-7.4.1.3",
        "server",
        "tests/conformance_server.rs",
        "one_pushed_subtree_below_a_file_gets_one_conflict_directory",
    ),
    (
        "R-7.4.1.4",
        "server",
        "tests/conformance_server.rs",
        "one_pushed_subtree_below_a_file_gets_one_conflict_directory",
    ),
    (
        "R-3.5.2",
        "server",
        "tests/server_hostile.rs",
        "a_client_that_never_reads_cannot_make_the_server_buffer_without_bound",
    ),
    (
        "R-5.6.1",
        "client",
        "src/client/applier/tests.rs",
        "remote_update_of_an_unchanged_file_overwrites_it",
    ),
    (
        "R-5.6.1",
        "client",
        "src/client/applier/tests.rs",
        "identical_local_file_is_adopted_without_download",
    ),
    (
        "R-5.6.1",
        "client",
        "src/client/applier/tests.rs",
        "local_edit_survives_when_the_server_did_not_change_the_file",
    ),
    (
        "R-5.6.1",
        "client",
        "src/client/applier/tests.rs",
        "remote_update_of_a_locally_edited_file_keeps_it_and_its_base",
    ),
    (
        "R-5.6.1",
        "client",
        "src/client/applier/tests.rs",
        "remote_update_of_a_locally_deleted_file_does_not_bring_it_back",
    ),
    (
        "R-5.6.1",
        "client",
        "tests/e2e_crash_own_push.rs",
        "own_pushes_in_flight_at_a_kill9_are_not_conflicts",
    ),
    (
        "R-5.6.1",
        "client",
        "tests/e2e_crash_own_push.rs",
        "own_pushes_in_flight_do_not_undo_a_rename_or_delete_made_while_stopped",
    ),
    (
        "R-5.6.1",
        "client",
        "src/client/applier/tests.rs",
        "remote_delete_removes_synced_files_but_keeps_local_edits",
    ),
    (
        "R-5.6.1",
        "client",
        "src/client/applier/tests.rs",
        "a_local_file_in_place_of_a_directory_does_not_hide_server_entries_below_it",
    ),
    (
        "R-5.6.1",
        "client",
        "src/client/applier/tests.rs",
        "a_new_local_directory_where_the_server_has_a_file_holds_the_cursor",
    ),
    (
        "R-5.6.2",
        "client",
        "src/client/applier/tests.rs",
        "edit_during_download_is_kept_aside",
    ),
    (
        "R-5.6.3",
        "client",
        "src/client/applier/tests.rs",
        "differing_local_file_of_a_new_client_is_pushed_before_the_pull_passes_it",
    ),
    (
        "R-5.6.3",
        "client",
        "tests/e2e_client.rs",
        "new_client_with_existing_files_keeps_both_sides",
    ),
    (
        "R-5.6.4",
        "client",
        "src/client/push.rs",
        "acks_update_the_index",
    ),
    (
        "R-5.6.4",
        "client",
        "src/client/push.rs",
        "conflict_ack_mirrors_the_server_locally",
    ),
    (
        "R-7.4.1.5",
        "server",
        "tests/conformance_server.rs",
        "one_pushed_subtree_below_a_file_gets_one_conflict_directory",
    ),
    (
        "R-6.1.2",
        "server",
        "tests/conformance_server.rs",
        "every_legal_path_is_storable_even_past_path_max_with_the_data_dir",
    ),
    (
        "R-4.5.7",
        "server",
        "tests/conformance_server.rs",
        "a_push_that_can_never_be_stored_gets_a_permanent_error",
    ),
    (
        "R-7.1.1",
        "server",
        "tests/conformance_server_random.rs",
        "random_pushes_take_one_number_notify_and_name_their_removals",
    ),
    (
        "R-4.4.1",
        "server",
        "tests/conformance_server_random.rs",
        "random_pushes_take_one_number_notify_and_name_their_removals",
    ),
    (
        "R-7.1.3",
        "server",
        "tests/conformance_server_random.rs",
        "random_pushes_take_one_number_notify_and_name_their_removals",
    ),
    (
        "R-7.2.2",
        "server",
        "tests/conformance_server_random.rs",
        "a_device_that_never_pulls_is_never_stale_against_itself",
    ),
    (
        "R-17.1",
        "server",
        "src/server/proxy_header/tests.rs",
        "every_header_fed_byte_by_byte_waits_then_gives_its_exact_length",
    ),
    (
        "R-17.1",
        "server",
        "src/server/proxy_header/tests.rs",
        "oversized_headers_are_refused_without_waiting_for_them",
    ),
    (
        "R-17.2",
        "server",
        "tests/haproxy_shards.rs",
        "each_client_behind_haproxy_is_seen_with_its_own_address",
    ),
    (
        "R-17.3",
        "server",
        "tests/haproxy_shards.rs",
        "each_client_behind_haproxy_is_seen_with_its_own_address",
    ),
    (
        "R-17.3",
        "server",
        "src/server/proxy_header/tests.rs",
        "wrong_headers_after_a_right_signature_are_refused_with_the_reason",
    ),
    (
        "R-17.1",
        "server",
        "tests/proxy_protocol.rs",
        "headers_in_pieces_give_the_clients_address",
    ),
    (
        "R-17.2",
        "server",
        "tests/proxy_protocol.rs",
        "headers_in_pieces_give_the_clients_address",
    ),
    (
        "R-17.2",
        "server",
        "tests/proxy_protocol.rs",
        "the_per_address_limit_applies_to_each_client_not_to_the_proxy",
    ),
    (
        "R-17.3",
        "server",
        "tests/proxy_protocol.rs",
        "a_stalled_or_wrong_header_closes_with_a_line",
    ),
    (
        "R-17.4",
        "server",
        "tests/haproxy_shards.rs",
        "each_client_behind_haproxy_is_seen_with_its_own_address",
    ),
];
/// Deployment requirements: about load balancers and networks around the
/// protocol, which no test of the server or client can observe.
const DEPLOYMENT: &[(&str, &str)] = &[
    ("R-1.3.1", "deployment requirement (TLS around the protocol): nothing to test in server or client"),
    ("R-2.3.2", "deployment requirement (load balancer routing): the routing bytes are tested by r_2_3_1"),
    ("R-2.3.3", "deployment requirement (load balancer routing of NewUser): the server side is tested by r_4_1_3"),
];

/// A requirement found in the spec.
struct Requirement {
    summary: String,
}

/// A test and the requirements it covers.
struct Covering {
    file: String,
    name: String,
    ignored: Option<String>,
}

/// `R-3.4.5` → `[3, 4, 5]` for ordering.
fn id_key(id: &str) -> Vec<u32> {
    id.trim_start_matches("R-")
        .split('.')
        .map(|n| n.parse().unwrap_or(u32::MAX))
        .collect()
}

/// Every `[R-…]` tag of the spec with the text that follows it (up to the
/// end of its sentence, cell or bullet, at most ~110 characters).
fn spec_requirements(spec: &str) -> (BTreeMap<String, Requirement>, Vec<String>) {
    let mut found = BTreeMap::new();
    let mut problems = Vec::new();
    let mut rest = spec;
    while let Some(at) = rest.find("[R-") {
        let quoted = rest[..at].ends_with('`');
        let after = &rest[at + 3..];
        let Some(end) = after.find(']') else { break };
        let id = format!("R-{}", &after[..end]);
        let valid = !after[..end].is_empty()
            && after[..end]
                .split('.')
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let text = &after[end + 1..];
        let stop = [". ", ".\n", "|", "\n\n", "[R-"]
            .iter()
            .filter_map(|s| text.find(s))
            .min()
            .unwrap_or(text.len());
        let mut summary: String = text[..stop]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if summary.chars().count() > 110 {
            summary = summary.chars().take(107).collect::<String>() + "…";
        }
        if quoted {
            // `[R-…]` in backticks is an example in the prose, not a tag.
        } else if !valid {
            problems.push(format!("malformed requirement tag [{id}]"));
        } else if found.contains_key(&id) {
            problems.push(format!("{id} is used twice in PROTOCOL.md"));
        } else {
            found.insert(id.clone(), Requirement { summary });
        }
        rest = &after[end..];
    }
    (found, problems)
}

/// `r_3_4_5_what` → `R-3.4.5`.
fn id_of_test_name(name: &str) -> Option<String> {
    let mut parts = name.strip_prefix("r_")?.split('_');
    let mut numbers = Vec::new();
    for part in parts.by_ref() {
        if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
            numbers.push(part);
        } else {
            break;
        }
    }
    (numbers.len() >= 2).then(|| format!("R-{}", numbers.join(".")))
}

/// The coverage claimed by one test source: (requirement, test) pairs.
fn test_coverage(file: &str, source: &str) -> Vec<(String, Covering)> {
    let mut out = Vec::new();
    let mut covers: Vec<String> = Vec::new();
    let mut ignored = None;
    let mut is_test = false;
    for line in source.lines() {
        let line = line.trim();
        if let Some(list) = line.strip_prefix("/// Covers:") {
            covers.extend(
                list.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            );
        } else if line.starts_with("#[test]") {
            is_test = true;
        } else if let Some(reason) = line.strip_prefix("#[ignore") {
            ignored = Some(
                reason
                    .trim_start_matches([' ', '=', '"'])
                    .trim_end_matches([']', '"'])
                    .to_string(),
            );
        } else if let Some(sig) = line.strip_prefix("fn ") {
            let name: String = sig
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if is_test {
                let mut ids: Vec<String> = std::mem::take(&mut covers);
                if let Some(own) = id_of_test_name(&name) {
                    ids.insert(0, own);
                }
                for id in ids {
                    out.push((
                        id,
                        Covering {
                            file: file.to_string(),
                            name: name.clone(),
                            ignored: ignored.clone(),
                        },
                    ));
                }
            }
            covers.clear();
            ignored = None;
            is_test = false;
        } else if !(line.starts_with("///") || line.starts_with("#[")) {
            covers.clear();
            ignored = None;
            is_test = false;
        }
    }
    out
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The markdown table of every requirement and its test.
fn render(reqs: &BTreeMap<String, Requirement>, tested: &BTreeMap<String, Vec<String>>) -> String {
    let mut ids: Vec<&String> = reqs.keys().collect();
    ids.sort_by_key(|id| id_key(id));
    let mut out = String::from(
        "# Requirements of PROTOCOL.md and their tests\n\n\
         Generated by `tests/conformance_requirements.rs` from the `[R-…]` tags of\n\
         [PROTOCOL.md](PROTOCOL.md) (§1.6) and the tests that name them; do not edit.\n\
         Regenerate with\n\
         `REQUIREMENTS_BLESS=1 cargo test --release --test conformance_requirements`.\n\
         A test marked *ignored* exists and is expected to pass once the server conforms.\n\n\
         | ID | Requirement | Tested by |\n|---|---|---|\n",
    );
    for id in ids {
        let summary = reqs[id].summary.replace('|', "\\|");
        let tests = tested.get(id).map(|t| t.join("<br>")).unwrap_or_default();
        out.push_str(&format!("| {id} | {summary} | {tests} |\n"));
    }
    out
}

#[test]
fn every_requirement_has_a_test_and_the_table_is_current() {
    let (reqs, mut problems) = spec_requirements(&read("protocol-spec/PROTOCOL.md"));
    let mut tested: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut files: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("tests"))
        .expect("tests/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("conformance_") && n.ends_with(".rs"))
        .filter(|n| n != "conformance_requirements.rs")
        .collect();
    files.sort();
    let mut names = BTreeSet::new();
    for file in &files {
        let path = format!("tests/{file}");
        for (id, c) in test_coverage(&path, &read(&path)) {
            if !reqs.contains_key(&id) {
                problems.push(format!(
                    "{}::{} names {id}, which PROTOCOL.md does not define",
                    c.file, c.name
                ));
                continue;
            }
            let short = c.file.trim_start_matches("tests/").trim_end_matches(".rs");
            let mut cell = match short {
                "conformance_client" => {
                    format!("client requirement, tested by `{short}::{}`", c.name)
                }
                _ => format!("`{short}::{}`", c.name),
            };
            if let Some(why) = &c.ignored {
                cell.push_str(&format!(" (*ignored*: {why})"));
            }
            names.insert(c.name.clone());
            tested.entry(id).or_default().push(cell);
        }
    }
    for (id, who, file, name) in ELSEWHERE {
        if !reqs.contains_key(*id) {
            problems.push(format!(
                "ELSEWHERE maps {id}, which PROTOCOL.md does not define"
            ));
        }
        if !read(file).contains(&format!("fn {name}(")) {
            problems.push(format!("{id}: {file} has no test fn {name}"));
        }
        tested.entry(id.to_string()).or_default().push(match *who {
            "server" => format!(
                "`{}::{name}`",
                file.trim_start_matches("tests/").trim_end_matches(".rs")
            ),
            _ => format!("{who} requirement, tested by `{file}::{name}`"),
        });
    }
    for (id, why) in DEPLOYMENT {
        if !reqs.contains_key(*id) {
            problems.push(format!(
                "DEPLOYMENT lists {id}, which PROTOCOL.md does not define"
            ));
        }
        tested
            .entry(id.to_string())
            .or_default()
            .push(why.to_string());
    }
    for id in reqs.keys() {
        if !tested.contains_key(id) {
            problems.push(format!("{id} ({}) has no test", reqs[id].summary));
        }
    }
    let table = render(&reqs, &tested);
    let target = Path::new(ROOT).join("protocol-spec/REQUIREMENTS.md");
    if std::env::var_os("REQUIREMENTS_BLESS").is_some() {
        std::fs::write(&target, &table).expect("write REQUIREMENTS.md");
    } else if std::fs::read_to_string(&target).ok().as_deref() != Some(table.as_str()) {
        problems.push(
            "protocol-spec/REQUIREMENTS.md is stale; regenerate it with \
             `REQUIREMENTS_BLESS=1 cargo test --release --test conformance_requirements`"
                .to_string(),
        );
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        reqs.len() >= 100,
        "the spec lost its requirement tags: {}",
        reqs.len()
    );
}

#[test]
fn the_checker_reads_names_and_cover_lists() {
    assert_eq!(
        id_of_test_name("r_3_4_5_replies_keep_order").as_deref(),
        Some("R-3.4.5")
    );
    assert_eq!(
        id_of_test_name("r_10_1_acked_survives").as_deref(),
        Some("R-10.1")
    );
    assert_eq!(id_of_test_name("r_x_1"), None);
    let src = "/// Says why.\n/// Covers: R-1.4.3, R-3.3.3\n#[test]\n#[ignore = \"issue 10 item 4: not yet\"]\nfn r_3_3_5_closes() {}\n\nfn helper() {}\n";
    let got: Vec<(String, Option<String>)> = test_coverage("t.rs", src)
        .into_iter()
        .map(|(id, c)| (id, c.ignored))
        .collect();
    let why = Some("issue 10 item 4: not yet".to_string());
    assert_eq!(
        got,
        vec![
            ("R-3.3.5".to_string(), why.clone()),
            ("R-1.4.3".to_string(), why.clone()),
            ("R-3.3.3".to_string(), why)
        ]
    );
    let (reqs, problems) =
        spec_requirements("- [R-2.1] A MUST b. Then.\n[R-2.1] again [R-x] `[R-9.9]`");
    assert!(!reqs.contains_key("R-9.9"));
    assert_eq!(reqs["R-2.1"].summary, "A MUST b");
    assert_eq!(problems.len(), 2, "{problems:?}");
}
