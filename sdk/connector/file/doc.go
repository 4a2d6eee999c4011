// Package file owns the file connectors: a source reading text lines of
// files split by byte ranges across subtasks, and a sink whose output becomes
// visible only when it is final. Visible output is every file under the
// output directory whose name does not start with "." or "_"; work in
// progress is hidden under a leading ".", so readers never see partial files.
package file
