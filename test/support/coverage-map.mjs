// Each test file counts coverage for the library sources it exercises.
export default () => ['lib/**/*.ts']
