import Link from '@docusaurus/Link';
import Layout from '@theme/Layout';
import useDocusaurusContext from '@docusaurus/useDocusaurusContext';
import styles from './index.module.css';

const CHAPTERS = [
  {to: '/docs/introduction', label: '1. Introduction to Physical AI'},
  {to: '/docs/kinematics', label: '2. Robot Kinematics and Dynamics'},
  {to: '/docs/sensors-perception', label: '3. Sensors and Perception'},
  {to: '/docs/ros2', label: '4. ROS 2 Fundamentals'},
  {to: '/docs/simulation', label: '5. Simulation and Sim-to-Real Transfer'},
  {to: '/docs/locomotion', label: '6. Locomotion and Balance'},
  {to: '/docs/manipulation', label: '7. Manipulation and Grasping'},
  {to: '/docs/learning-vla', label: '8. Robot Learning and VLA Models'},
  {to: '/docs/safety-hri', label: '9. Safety and Human-Robot Interaction'},
  {to: '/docs/capstone', label: '10. Capstone: A Voice-Commanded Fetch Humanoid'},
];

export default function Home() {
  const {siteConfig} = useDocusaurusContext();
  return (
    <Layout title="Home" description={siteConfig.tagline}>
      <header className={`hero hero--primary ${styles.hero}`}>
        <div className="container">
          <h1 className="hero__title">{siteConfig.title}</h1>
          <p className="hero__subtitle">{siteConfig.tagline}</p>
          <div className={styles.buttons}>
            <Link
              className={`button button--secondary button--lg ${styles.startButton}`}
              to="/docs/introduction">
              Start reading: Introduction to Physical AI
            </Link>
          </div>
        </div>
      </header>
      <main className={`container ${styles.chapters}`}>
        <h2>Chapters</h2>
        <ul className={styles.chapterList}>
          {CHAPTERS.map((chapter) => (
            <li key={chapter.to}>
              <Link to={chapter.to}>{chapter.label}</Link>
            </li>
          ))}
        </ul>
        <p>
          Every page has a built-in assistant (the button in the bottom-right corner) that answers
          questions from this textbook and cites the sections it used.
        </p>
      </main>
    </Layout>
  );
}
